// The rlsizer wire contract in Node.js, with kafkajs and @kafkajs/confluent-schema-registry only.
//
//   inputs   <prefix>.inputs     BarClosed, SignalRaised, OrderFilled -- everything a bot sends, keyed by
//                                the symbol, Kafka's default (murmur2) partitioner, in the order they happened
//   answers  <prefix>.decisions  SizeDecided   (match by signal_id)
//            <prefix>.outcomes   TradeClosed   (derived by the worker from the entry and exit fills)
//            <prefix>.dlq        EventRejected (bad input, with its raw bytes and a reason)
//
// Copy this file into a bot; bot.js shows it in use.
'use strict'

const fs = require('fs')
const path = require('path')
const { Kafka, Partitioners, logLevel } = require('kafkajs')
const { SchemaRegistry, SchemaType } = require('@kafkajs/confluent-schema-registry')

const INPUTS = ['BarClosed', 'SignalRaised', 'OrderFilled']

/** Settings from the same environment variables rlsizer reads (defaults: `rlsizer up`). */
function settingsFromEnv (env = process.env) {
  return {
    bootstrap: (env.RLSIZER_KAFKA_BOOTSTRAP || '127.0.0.1:9092').split(','),
    registryUrl: env.RLSIZER_REGISTRY_URL || 'http://127.0.0.1:8081',
    prefix: env.RLSIZER_TOPIC_PREFIX || 'rlsizer',
    schemaDir: env.RLSIZER_SCHEMA_DIR || path.resolve(__dirname, '..', '..', 'schemas')
  }
}

/** Timestamps are Avro timestamp-micros: microseconds since the epoch, UTC. Date.now() is milliseconds. */
const micros = (date = new Date()) => date.getTime() * 1000

/**
 * Consumer settings that matter on the embedded broker. A record that arrives while a fetch waits
 * is delivered by tansu 0.6.0 only at fixed points of maxWaitTimeInMs (half of it, 3/4, 7/8, ...),
 * and a new member joins after half its sessionTimeout: with kafkajs's defaults (5000 ms, 30000 ms)
 * an answer waits up to 2.5 s and the first join takes 15 s. The numbers, and what the short wait
 * costs the broker, are in the top-level README.
 */
const FAST_CONSUMER = { maxWaitTimeInMs: 20, sessionTimeout: 6000, heartbeatInterval: 2000 }

class RlsizerClient {
  constructor (settings, { clientId = 'node-bot', consumer = FAST_CONSUMER, groupId } = {}) {
    this.settings = settings
    this.topics = {
      inputs: `${settings.prefix}.inputs`,
      decisions: `${settings.prefix}.decisions`,
      outcomes: `${settings.prefix}.outcomes`,
      dlq: `${settings.prefix}.dlq`
    }
    this.kafka = new Kafka({ clientId, brokers: settings.bootstrap, logLevel: logLevel.WARN })
    this.registry = new SchemaRegistry({ host: settings.registryUrl })
    // Kafka's default partitioner (murmur2 of the key, as Java clients): the worker checks that every
    // input is on the partition its symbol maps to. Awaiting each send and one request in flight keep
    // a symbol's inputs in the order they were sent.
    this.producer = this.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false
    })
    // One group per bot, with a stable id: a restarted bot resumes after the answers it has read.
    this.consumerConfig = { groupId: groupId || clientId, ...consumer }
    this.consumer = this.kafka.consumer(this.consumerConfig)
    this.schemaIds = {}
    this.received = { decisions: [], outcomes: [], dlq: [] }
    this.waiters = []
    this.timings = {}
  }

  /**
   * Register the input schemas under TopicRecordNameStrategy subjects (`<topic>-<namespace>.<name>`),
   * connect, and join the consumer group on the answer topics. Resolves when the consumer has
   * fetched once, so nothing published after start() can be missed.
   */
  async start () {
    for (const name of INPUTS) {
      const schema = fs.readFileSync(path.join(this.settings.schemaDir, `${name}.avsc`), 'utf8')
      const { namespace } = JSON.parse(schema)
      // The library's own default subject would be `rlsizer.v1.SignalRaised`: give it explicitly.
      const subject = `${this.topics.inputs}-${namespace}.${name}`
      const { id } = await this.registry.register({ type: SchemaType.AVRO, schema }, { subject })
      this.schemaIds[name] = id
    }
    await this.producer.connect()

    const started = Date.now()
    const joined = new Promise(resolve => {
      const off = this.consumer.on(this.consumer.events.GROUP_JOIN, () => { off(); resolve(Date.now()) })
    })
    const fetched = new Promise(resolve => {
      joined.then(() => {
        const off = this.consumer.on(this.consumer.events.FETCH, () => { off(); resolve(Date.now()) })
      })
    })
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [this.topics.decisions, this.topics.outcomes, this.topics.dlq] })
    await this.consumer.run({ eachMessage: payload => this._receive(payload) })
    const joinedAt = await joined
    const fetchedAt = await fetched
    this.timings = { joinMs: joinedAt - started, readyMs: fetchedAt - started }
    return this.timings
  }

  async stop () {
    await Promise.allSettled([this.consumer.disconnect(), this.producer.disconnect()])
  }

  /**
   * Publish one input event keyed by its symbol; resolves when the broker has it. `name` is
   * BarClosed, SignalRaised or OrderFilled, `event` a plain object matching its .avsc. Publish a
   * symbol's inputs one after the other, in the order they happened. Returns the partition the
   * record went to and its bytes.
   */
  async publish (name, event, { partition } = {}) {
    const value = await this.registry.encode(this.schemaIds[name], event)
    const message = { key: event.symbol, value }
    if (partition !== undefined) message.partition = partition // only to show what a wrong partition does
    const [meta] = await this.producer.send({ topic: this.topics.inputs, messages: [message] })
    return { partition: meta.partition, offset: Number(meta.baseOffset), value }
  }

  /** How many partitions `topic` has. */
  async partitionCount (topic) {
    const admin = this.kafka.admin()
    await admin.connect()
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] })
      return topics[0].partitions.length
    } finally {
      await admin.disconnect()
    }
  }

  /**
   * The first answer on `topic` (decisions, outcomes, dlq) for which `match(answer)` is true, received
   * or to come. An answer is { topic, partition, offset, key, event, at }.
   */
  next (topic, match, timeoutMs = 10000) {
    const seen = this.received[topic].find(match)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const waiter = { topic, match, resolve }
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter(w => w !== waiter)
        reject(new Error(`nothing on ${this.topics[topic]} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiters.push(waiter)
    })
  }

  /** All answers received so far on `topic` for which `match(answer)` is true. */
  all (topic, match) {
    return this.received[topic].filter(match)
  }

  async _receive ({ topic, partition, message }) {
    const short = Object.keys(this.topics).find(k => this.topics[k] === topic)
    const answer = {
      topic: short,
      partition,
      offset: message.offset,
      key: message.key && message.key.toString(),
      event: await this.registry.decode(message.value), // looks the writer schema up by the id in the frame
      at: Date.now()
    }
    this.received[short].push(answer)
    for (const waiter of this.waiters.filter(w => w.topic === short && w.match(answer))) {
      clearTimeout(waiter.timer)
      this.waiters = this.waiters.filter(w => w !== waiter)
      waiter.resolve(answer)
    }
  }
}

module.exports = { RlsizerClient, settingsFromEnv, micros, FAST_CONSUMER, INPUTS }
