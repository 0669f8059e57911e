// What the consumer settings cost and buy on the embedded broker: time to join the group,
// decision round trip (signal sent -> SizeDecided received), requests the consumer makes while
// idle, and (Linux, with TANSU_PID) the broker's CPU. Prints one JSON line.
//
//   MEASURE_CONSUMER=defaults|fast  kafkajs's own defaults, or FAST_CONSUMER from rlsizer.js
//   MEASURE_MAX_WAIT_MS=100         (fast only) another maxWaitTimeInMs
//   MEASURE_LOCKSTEP=1              send each signal as soon as the previous answer is in
//   MEASURE_SIGNALS=20  MEASURE_IDLE_S=20  TANSU_PID=<pid of tansu>   (+ the RLSIZER_* variables)
//
// Signals are sent one at a time at a random moment of the fetch cycle (a pause of 0..maxWait),
// so a round trip measures what a bot that signals at arbitrary times sees; MEASURE_LOCKSTEP=1
// sends each as soon as the previous answer is in.
'use strict'

const crypto = require('crypto')
const fs = require('fs')
const { RlsizerClient, settingsFromEnv, micros, FAST_CONSUMER } = require('./rlsizer')

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const TICK_MS = 10 // Linux clock ticks (USER_HZ = 100) in /proc/<pid>/stat

function cpuMs (pid) {
  if (!pid) return null
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS // utime + stime
}

async function window (pid, seconds, requests) {
  const cpu0 = cpuMs(pid)
  const req0 = requests.count
  const t0 = Date.now()
  await sleep(seconds * 1000)
  const elapsed = (Date.now() - t0) / 1000
  return {
    seconds: Math.round(elapsed),
    brokerCpuPct: pid ? Math.round((cpuMs(pid) - cpu0) / (elapsed * 10) * 10) / 10 : null,
    consumerRequestsPerS: Math.round((requests.count - req0) / elapsed * 10) / 10
  }
}

function quantile (sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

async function main () {
  const mode = process.env.MEASURE_CONSUMER || 'fast'
  const signals = Number(process.env.MEASURE_SIGNALS || 20)
  const idleS = Number(process.env.MEASURE_IDLE_S || 20)
  const pid = process.env.TANSU_PID
  const consumer = mode === 'defaults' ? {} : { ...FAST_CONSUMER }
  if (process.env.MEASURE_MAX_WAIT_MS) consumer.maxWaitTimeInMs = Number(process.env.MEASURE_MAX_WAIT_MS)
  const client = new RlsizerClient(settingsFromEnv(), { clientId: `measure-${mode}`, groupId: `measure-${Date.now()}`, consumer })
  const requests = { count: 0, byApi: {} }
  client.consumer.on(client.consumer.events.REQUEST, ({ payload }) => {
    requests.count += 1
    requests.byApi[payload.apiName] = (requests.byApi[payload.apiName] || 0) + 1
  })
  const fetchMs = []
  client.consumer.on(client.consumer.events.FETCH, ({ payload }) => fetchMs.push(payload.duration))
  const out = { mode, consumer: consumer }
  out.brokerBefore = await window(pid, idleS, requests) // the stack with no bot connected
  try {
    out.start = await client.start()
    const idleFrom = fetchMs.length
    out.brokerBotIdle = await window(pid, idleS, requests)
    const idleFetches = fetchMs.slice(idleFrom).sort((a, b) => a - b)
    out.idleFetchMs = { n: idleFetches.length, min: idleFetches[0], p50: quantile(idleFetches, 0.5), max: idleFetches[idleFetches.length - 1] }

    const symbol = `MEAS.${crypto.randomBytes(3).toString('hex')}`
    const start = Date.now() - 60 * 60 * 1000
    for (let i = 1; i <= 40; i++) {
      const close = 100 + Math.sin(i / 3)
      await client.publish('BarClosed', {
        event_id: crypto.randomUUID(), ts_event: micros(new Date(start + i * 60000)), ts_init: micros(), symbol,
        interval: '1m', open: 100, high: Math.max(100, close) + 0.1, low: Math.min(100, close) - 0.1, close,
        volume: 1000, bid: null, ask: null, bid_size: null, ask_size: null
      })
    }
    const maxWait = client.consumerConfig.maxWaitTimeInMs || 5000
    const lockStep = process.env.MEASURE_LOCKSTEP === '1' // each signal right after the previous answer
    const rtts = []
    const cpu0 = cpuMs(pid)
    const t0 = Date.now()
    for (let i = 0; i < signals; i++) {
      await sleep(lockStep ? 0 : Math.random() * maxWait)
      const sig = {
        event_id: crypto.randomUUID(), ts_event: micros(new Date(start + 40 * 60000 + i * 1000)), ts_init: micros(),
        signal_id: `measure-${crypto.randomUUID()}`, strategy_id: 'S1', symbol, side: 'BUY', price: 100, atr: 1,
        score: 0, q_score: 0.5, base_qty: 10, stop_price: 99, target_price: 102, adapter: 'measure', attrs: {}
      }
      const sentAt = Date.now()
      await client.publish('SignalRaised', sig)
      const answer = await client.next('decisions', a => a.event.signal_id === sig.signal_id, 30000)
      rtts.push(answer.at - sentAt)
    }
    const elapsed = (Date.now() - t0) / 1000
    const sorted = [...rtts].sort((a, b) => a - b)
    out.decisionMs = {
      n: rtts.length,
      p50: quantile(sorted, 0.5),
      p90: quantile(sorted, 0.9),
      max: sorted[sorted.length - 1],
      mean: Math.round(rtts.reduce((a, b) => a + b, 0) / rtts.length)
    }
    out.brokerDuringSignals = pid ? Math.round((cpuMs(pid) - cpu0) / (elapsed * 10) * 10) / 10 : null
    out.requestsByApi = requests.byApi
    if (process.env.MEASURE_RAW) out.raw = { rtts, fetchMs }
  } finally {
    await client.stop()
  }
  console.log(JSON.stringify(out))
}

main().catch(err => { console.error(err); process.exit(1) })
