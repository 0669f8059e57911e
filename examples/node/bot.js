// A scripted trading session against rlsizer: bars, signals, decisions, fills, outcomes, bad input.
// Prints every check; exits 1 if any failed, 2 if the session could not run.
//
//   npm ci && node bot.js      (RLSIZER_KAFKA_BOOTSTRAP, RLSIZER_REGISTRY_URL, RLSIZER_TOPIC_PREFIX)
'use strict'

const assert = require('assert')
const crypto = require('crypto')
const { RlsizerClient, settingsFromEnv, micros } = require('./rlsizer')

const BARS = 40 // the worker needs 35 bars of a symbol before its indicators are defined
const MINUTE = 60 * 1000

let failed = 0
function check (what, fn) {
  try {
    const detail = fn()
    console.log(`ok    ${what}${detail ? ` -- ${detail}` : ''}`)
  } catch (err) {
    failed += 1
    console.log(`FAIL  ${what} -- ${err.message}`)
  }
}

/** A deterministic random walk of one-minute bars closing at `start` + 1..BARS minutes. */
function bars (symbol, start, price) {
  const out = []
  for (let i = 1; i <= BARS; i++) {
    const open = price
    price = Math.round(price * (1 + 0.002 * Math.sin(i * 1.7 + symbol.length)) * 100) / 100
    const close = new Date(start.getTime() + i * MINUTE)
    out.push(bar(symbol, close, open, price))
  }
  return out
}

function bar (symbol, close, open, last) {
  return {
    event_id: crypto.randomUUID(),
    ts_event: micros(close), // microseconds since the epoch, UTC
    ts_init: micros(),
    symbol,
    interval: '1m',
    open,
    high: Math.max(open, last) + 0.05,
    low: Math.min(open, last) - 0.05,
    close: last,
    volume: 1000,
    bid: null,
    ask: null,
    bid_size: null,
    ask_size: null
  }
}

function signal (symbol, at, { side, price, strategy = 'S1', ...rest }) {
  const risk = price * 0.01
  return {
    event_id: crypto.randomUUID(),
    ts_event: micros(at),
    ts_init: micros(),
    signal_id: `node-${crypto.randomUUID()}`,
    strategy_id: strategy,
    symbol,
    side,
    price,
    atr: risk,
    score: 0.4,
    q_score: 0.6,
    base_qty: 100,
    // on the right side of the price: a BUY's stop below it and its target above, a SELL's the other way
    stop_price: side === 'BUY' ? price - risk : price + risk,
    target_price: side === 'BUY' ? price + 2 * risk : price - 2 * risk,
    adapter: 'node-example',
    attrs: { bot: 'examples/node' },
    ...rest
  }
}

function fill (sig, leg, at, { qty, price, exitReason = null }) {
  const side = leg === 'ENTRY' ? sig.side : (sig.side === 'BUY' ? 'SELL' : 'BUY')
  return {
    event_id: crypto.randomUUID(),
    ts_event: micros(at),
    ts_init: micros(),
    signal_id: sig.signal_id,
    order_id: `${sig.signal_id}:${leg.toLowerCase()}`,
    symbol: sig.symbol,
    side,
    qty,
    price,
    fee: 0.5,
    leg,
    exit_reason: exitReason
  }
}

/** The first answer on `topic` matching `match`; on a timeout, say what was awaited and what the dlq holds for `symbol`. */
async function awaitAnswer (client, topic, match, what, symbol) {
  try {
    return await client.next(topic, match)
  } catch (err) {
    const letters = client.all('dlq', a => String(a.event.raw_key) === symbol)
    const last = letters.slice(-3).map(a => `\n      dead letter: ${a.event.error_type}: ${a.event.reason}`)
    const count = letters.length ? `; ${letters.length} dead letter(s) for ${symbol}, the last:` : ''
    throw new Error(`${what}: ${err.message}${count}${last.join('')}`)
  }
}

const close = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))

async function session (client) {
  const result = { partitions: {}, decisionMs: [] }
  const timings = await client.start()
  result.joinMs = timings.joinMs
  console.log(`info  joined the consumer group in ${timings.joinMs} ms, first fetch after ${timings.readyMs} ms ` +
              `(maxWaitTimeInMs ${client.consumerConfig.maxWaitTimeInMs}, sessionTimeout ${client.consumerConfig.sessionTimeout})`)

  // 1. Bars, then a signal at the last bar, for each symbol: the decision must see those bars.
  const run = crypto.randomBytes(3).toString('hex')
  const start = new Date(Math.floor(Date.now() / MINUTE) * MINUTE - (BARS + 5) * MINUTE) // all bars in the past
  const book = [['AAPL', 'BUY', 'S1', 190], ['MSFT', 'SELL', 'S5', 410], ['IBM', 'BUY', 'S9', 170], ['GOOG', 'SELL', 'S12', 140]]
  const signals = []
  for (const [base, side, strategy, price] of book) {
    const symbol = `${base}.${run}` // fresh symbols each run, so bar times never go back on a long-lived stack
    const series = bars(symbol, start, price)
    const partitions = new Set()
    for (const b of series) partitions.add((await client.publish('BarClosed', b)).partition)
    const last = series[series.length - 1]
    const sig = signal(symbol, new Date(last.ts_event / 1000), { side, price: last.close, strategy })
    const sent = await client.publish('SignalRaised', sig)
    partitions.add(sent.partition)
    signals.push({ sig, sent, sentAt: Date.now(), partitions })
    result.partitions[symbol] = [...partitions]
  }
  console.log(`info  published ${BARS} bars and a signal for each of ${signals.map(s => s.sig.symbol).join(', ')}`)
  for (const { sig, sent, sentAt, partitions } of signals) {
    check(`${sig.symbol}: its ${BARS} bars and its signal went to one partition`,
      () => { assert.deepStrictEqual([...partitions], [sent.partition]); return `partition ${sent.partition}` })
  }

  const decisions = {}
  for (const { sig, sent, sentAt } of signals) {
    const answer = await awaitAnswer(client, 'decisions', a => a.event.signal_id === sig.signal_id,
      `SizeDecided for ${sig.symbol}'s signal ${sig.signal_id}`, sig.symbol)
    const d = answer.event
    decisions[sig.signal_id] = answer
    result.decisionMs.push(answer.at - sentAt)
    check(`${sig.symbol} ${sig.side} ${sig.strategy_id}: SizeDecided for its signal`, () => {
      assert.strictEqual(answer.key, sig.symbol, 'keyed by the symbol')
      assert.strictEqual(answer.partition, sent.partition, 'on the signal\'s partition number')
      assert.ok(d.multiplier >= 0.25 && d.multiplier <= 2.0, `multiplier ${d.multiplier} in [0.25, 2.0]`)
      assert.ok(close(d.qty, sig.base_qty * d.multiplier), `qty ${d.qty} = base_qty x multiplier`)
      assert.strictEqual(d.ts_event, sig.ts_event, 'stamped with the signal\'s time')
      assert.notStrictEqual(d.policy, 'FALLBACK', `the decision saw the ${BARS} bars before it (${d.reason})`)
      return `${d.policy} x${d.multiplier.toFixed(3)} qty ${d.qty.toFixed(2)}, ${answer.at - sentAt} ms after the signal; ${d.reason}`
    })
  }

  // 2. The same signal again (same signal_id, e.g. after a timeout): the same decision again.
  const first = signals[0]
  const again = await client.publish('SignalRaised', first.sig)
  const repeat = await awaitAnswer(client, 'decisions',
    a => a.event.signal_id === first.sig.signal_id && a.offset !== decisions[first.sig.signal_id].offset,
    `a second SizeDecided for the re-sent signal ${first.sig.signal_id}`, first.sig.symbol)
  check(`${first.sig.symbol}: the re-sent signal got the identical decision`, () => {
    assert.deepStrictEqual(repeat.event, decisions[first.sig.signal_id].event)
    assert.strictEqual(repeat.partition, again.partition)
    return `event_id ${repeat.event.event_id}, x${repeat.event.multiplier.toFixed(3)}`
  })

  // 3. Entry fills at the signal, a bar, exit fills at that bar: a TradeClosed for each round trip.
  const trades = signals.slice(0, 2).map(({ sig }) => {
    const d = decisions[sig.signal_id].event
    const entryAt = new Date(sig.ts_event / 1000 + 1000)
    const entry = fill(sig, 'ENTRY', entryAt, { qty: d.qty, price: sig.price })
    const exitAt = new Date(sig.ts_event / 1000 + MINUTE)
    const exitPrice = sig.target_price // took profit at the target
    const next = bar(sig.symbol, exitAt, sig.price, exitPrice)
    const exit = fill(sig, 'EXIT', exitAt, { qty: d.qty, price: exitPrice, exitReason: 'target' })
    return { sig, entry, next, exit }
  })
  for (const { entry, next, exit } of trades) {
    await client.publish('OrderFilled', entry)
    await client.publish('BarClosed', next) // the bar the exit happened in, then the exit fill
    await client.publish('OrderFilled', exit)
  }
  for (const { sig, entry, exit } of trades) {
    const answer = await awaitAnswer(client, 'outcomes', a => a.event.signal_id === sig.signal_id,
      `TradeClosed for ${sig.symbol}'s signal ${sig.signal_id}`, sig.symbol)
    const t = answer.event
    check(`${sig.symbol}: entry and exit fills gave a TradeClosed`, () => {
      const s = sig.side === 'BUY' ? 1 : -1
      const risk = Math.abs(entry.price - sig.stop_price)
      assert.strictEqual(t.side, sig.side)
      assert.ok(close(t.qty, entry.qty) && close(t.entry_price, entry.price) && close(t.exit_price, exit.price),
        `qty/entry/exit ${t.qty}/${t.entry_price}/${t.exit_price}`)
      assert.ok(close(t.pnl, s * (exit.price - entry.price) * entry.qty - entry.fee - exit.fee), `pnl ${t.pnl}`)
      assert.ok(close(t.r_multiple, s * (exit.price - entry.price) / risk), `r_multiple ${t.r_multiple}`)
      assert.strictEqual(t.exit_reason, 'target')
      return `pnl ${t.pnl.toFixed(2)}, ${t.r_multiple.toFixed(2)} R, MAE ${t.mae_r.toFixed(2)} R, MFE ${t.mfe_r.toFixed(2)} R`
    })
  }

  // 4. Bad input is never dropped silently: each comes back on the dlq with its bytes and a reason.
  const symbol = signals[0].sig.symbol
  const at = new Date(signals[0].sig.ts_event / 1000 + 2 * MINUTE)
  const partitionCount = await client.partitionCount(client.topics.inputs)
  const wrong = (signals[0].sent.partition + 1) % partitionCount
  const bad = [
    ['a signal with an unknown strategy id', 'unknown_strategy', 'SignalRaised',
      signal(symbol, at, { side: 'BUY', price: 100, strategy: 'NOT-A-STRATEGY' })],
    ['a signal whose price is NaN', 'invalid_value', 'SignalRaised',
      { ...signal(symbol, at, { side: 'BUY', price: 100 }), price: NaN }],
    ['a signal with a negative price', 'invalid_value', 'SignalRaised',
      { ...signal(symbol, at, { side: 'SELL', price: 100 }), price: -100 }],
    ...(partitionCount > 1
      ? [[`a bar sent to partition ${wrong}, not the one its key maps to`, 'wrong_partition', 'BarClosed',
          bar(symbol, at, 100, 100), wrong]]
      : [])
  ]
  const sentBad = []
  for (const [what, kind, name, event, partition] of bad) {
    sentBad.push([what, kind, await client.publish(name, event, { partition })])
  }
  const isDeadLetterOf = sent => a => a.event.raw_value !== null && a.event.raw_value.equals(sent.value)
  for (const [what, kind, sent] of sentBad) {
    const answer = await awaitAnswer(client, 'dlq', isDeadLetterOf(sent), `the dead letter of ${what}`, symbol)
    const r = answer.event
    check(`${what}: EventRejected ${kind}`, () => {
      assert.strictEqual(r.error_type, kind, `error_type ${r.error_type}: ${r.reason}`)
      assert.strictEqual(r.source_topic, client.topics.inputs)
      assert.strictEqual(r.source_partition, sent.partition)
      return r.reason
    })
  }
  // (a new group may also read older dead letters first: only this run's symbols count)
  const ours = new Set(signals.map(s => s.sig.symbol))
  const forced = sentBad.filter(([, kind]) => kind === 'wrong_partition').map(([, , sent]) => isDeadLetterOf(sent))
  const misplaced = client.all('dlq', a => a.event.error_type === 'wrong_partition' &&
                                        ours.has(String(a.event.raw_key)) && !forced.some(f => f(a)))
  check('no input the producer placed itself was dead-lettered as wrong_partition (kafkajs DefaultPartitioner = murmur2)',
    () => { assert.deepStrictEqual(misplaced.map(a => a.event.reason), []) })

  return result
}

async function main () {
  const settings = settingsFromEnv()
  // a group of its own for this scripted run, so that two runs at once do not share the answers
  const client = new RlsizerClient(settings, { groupId: `node-bot-${process.pid}-${Date.now()}` })
  const timeoutS = Number(process.env.BOT_TIMEOUT_S || 60)
  const watchdog = setTimeout(() => {
    console.log(`FAIL  the session did not finish within ${timeoutS} s`)
    process.exit(2)
  }, timeoutS * 1000)
  console.log(`info  Kafka ${settings.bootstrap.join(',')}, registry ${settings.registryUrl}, topics ${settings.prefix}.*`)
  let result
  try {
    result = await session(client)
  } catch (err) {
    console.log(`FAIL  ${err.message || err}`)
    failed += 1
  } finally {
    await client.stop()
    clearTimeout(watchdog)
  }
  if (result) console.log(`RESULT ${JSON.stringify(result)}`)
  console.log(failed ? `${failed} check(s) failed` : 'all checks passed')
  process.exitCode = failed ? 1 : 0
}

main()
