// Generates src/trigger/reference_corpus.json: random and mutated triggers, each judged by
// Segment's own implementation against a fixed set of events.
//
//   npm install @segment/destination-subscriptions@3.37.0   (pulls @segment/fql-ts 1.10)
//   node gen_reference_corpus.js <seed> <count> [mutation rate] [expr|chars] > corpus.json
//
// The checked-in corpus is `node gen_reference_corpus.js 7 2000 0.35 expr` under Node 20.
// Larger corpora can be checked with
//   TRIGGER_CORPUS=corpus.json cargo test --lib agrees_with_corpus_from_env -- --ignored
// Output: {events: [...], cases: [[trigger, verdict]]}; verdict is "E" for a parse error,
// otherwise one letter per event: t (match), f (no match), x (validate threw).
const s = require(process.env.SUBSCRIPTIONS_MODULE || '@segment/destination-subscriptions');
let seed = Number(process.argv[2] || 1);
const N = Number(process.argv[3] || 1000);
const MODE = process.argv[5] || 'expr';
const PIECES = ['type', 'event', 'properties.', 'properties', 'x', 'a', 'an', 'and', 'or', 'o', 'n', 'nu', 'null', ' ', ' ', ' ', ' ', '=', '!', '!=', '<', '>', '<=', '"', "'", '(', ')', ',', '.', '\\', '1', '0', '-', '+', '5.', '*', 'contains', 'match', 'true', 'false', 'userId', 'name', 'traits.', 'context.', '_', '[', ']', '\t', '\n', '\ud83d\ude00', '"Order*"', '"f"', 'gift', 's', 'revenue', 'zero', '"a"', 'eos'];
const MUT = Number(process.argv[4] || 0.35);
function rnd() { seed = (seed + 0x6D2B79F5) | 0; let t = seed; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; }
function pick(a) { return a[Math.floor(rnd() * a.length)]; }
const events = [
  {type: 'track', event: 'Order Completed', userId: 'u1', properties: {revenue: 129.99, currency: 'USD', items: [{sku: 'a'}, {sku: 'b'}], gift: true, coupon: null, zero: 0, empty: '', s: 'Order', n: '10', nested: {a: {b: 1}}}, context: {traits: {email: 'x@y.z'}, page: {url: 'https://x/y'}}},
  {type: 'track', event: 'Signed Up', userId: null, properties: {revenue: 5, gift: false, constructor: 'c', 'a.b': 3, zero: '0'}, traits: {gender: 'f'}},
  {type: 'identify', userId: 'true', traits: {gender: 'f', age: 30, vip: true, tags: ['x', 'y']}},
  {type: 'page', name: 'Checkout', properties: {coupon: 'Z', path: '/a/b'}},
  {type: 'page', name: null, properties: false, userId: true},
  {type: 'eos', event: 'eos', name: 'null', userId: 7, properties: {x: 'eos', '0': 'zero'}},
  {type: 'screen', event: 5, properties: 0, traits: 'abc', context: []},
  {type: 'group', event: 'a', userId: 'a', properties: {x: 'a', y: 1, z: -1, w: 1.5, v: 7}},
  {type: 'track', event: 'Subscription Started', properties: {revenue: 19.99, '1': 'one'}},
  {event: 'Order Completed', properties: {revenue: '129.99'}},
  {type: 'alias', event: "'Order Completed'", properties: {x: "'a'", y: 'a\\'}},
  {type: 'track', event: '\ud801\ude00abc', properties: JSON.parse('{"s": "\ud83d\ude00x", "e": "a\ud83d\ude00abc", "__proto__": 5, "u": "b"}'), traits: {constructor: null}},
  {type: 'track', event: 'Order Completed', properties: [1, 'Order', {sku: 'a'}], traits: {tags: []}, context: 'ctx'},
  {},
  null,
];
const fields = ['type', 'event', 'name', 'userId', 'properties.revenue', 'properties.gift', 'properties.coupon',
  'properties.items.length', 'properties.items.\\0.sku', 'properties.zero', 'properties.zero.x', 'properties.empty',
  'properties.s', 'properties.s.length', 'properties.s.\\0', 'properties.n', 'properties.nested.a.b', 'properties.a\\.b',
  'properties.constructor', 'properties.x', 'properties.y', 'properties.w', 'properties', 'propertiesx', 'traits.gender',
  'traits.age', 'traits.vip', 'traits.tags.\\1', 'traits.length', 'context.traits.email', 'context.page.url',
  'context.length', 'constructor', 'toString', 'foo', 'type.x', 'event.y', 'properties.\\.', 'properties.\\[\\]', 'properties.\\ x',
  'properties.s.\\1', 'properties.s.\\0', 'properties.\\0', 'properties.\\2.sku', 'properties.length', 'traits.constructor', 'properties.__proto__', 'properties.e', 'properties.u', 'traits.tags.length', 'context.length', 'context.\\0'];
const ops = ['=', '=', '!=', '!=', '<', '<=', '>', '>=', '==', 'contains', 'exists', 'not_exists', 'is_true', 'number_equals', 'starts_with', '!'];
const values = ['"Order Completed"', '"track"', '"page"', '"identify"', '"f"', '"a"', '"eos"', '"null"', '"true"', '""', "'a'",
  "'Order Completed'", '10', '5', '0', '-1', '1.5', '19.99', '007', '+3', '-', '129.99', 'true', 'false', 'null', 'eos', 'a',
  '"10"', '"0x10"', '" 5 "', '"1e1"', '"Infinity"', '"abc"', 'x', '"Order*"', '"*Started"'];
const funcs = ['contains', 'match'];
const fvals = ['"\ud83d\ude00abc"', '"\ud801\ude00abc"', '"*abc"', '"b*"', '"Order"', '"Order*"', '"*Started"', '"*"', '""', '"rder"', '"a"', "'Or'", '"x*"', '"Sig*"', '"*d Up"', 'x', '5', '"f"'];
function sp() { const r = rnd(); return r < 0.8 ? ' ' : r < 0.9 ? '' : '  '; }
function atom() {
  const r = rnd();
  if (r < 0.55) return pick(fields) + sp() + pick(ops) + sp() + pick(values);
  if (r < 0.75) { const neg = rnd() < 0.3 ? '!' : ''; return neg + pick(funcs) + '(' + pick(fields) + ',' + sp() + pick(fvals) + ')'; }
  if (r < 0.8) return '(' + expr(2) + ')';
  if (r < 0.9) return '!' + atom();
  if (r < 0.95) return pick(fields) + sp() + pick(ops);
  return pick(['()', 'all', 'AND', 'and', 'or', ')', '(', '"x"', '5', '.', ',', '[', ']', '!']);
}
function expr(d) {
  let out = atom();
  const n = Math.floor(rnd() * (d > 1 ? 2 : 3));
  for (let i = 0; i < n; i++) out += ' ' + pick(['and', 'or', 'and', 'or', 'AND', 'Or']) + ' ' + (d < 1 && rnd() < 0.15 ? '(' + expr(2) + ')' : atom());
  return out;
}
function mutate(c) {
  const chars = ' ()"\'!=<>.,\\abn_-+01*[]';
  const k = Math.floor(rnd() * 3);
  for (let i = 0; i < k; i++) {
    const at = Math.floor(rnd() * (c.length + 1));
    const r = rnd();
    if (r < 0.4) c = c.slice(0, at) + pick(chars) + c.slice(at);
    else if (r < 0.8) c = c.slice(0, at) + c.slice(at + 1);
    else c = c.slice(0, at);
  }
  return c;
}
const cases = [];
const seen = new Set();
while (cases.length < N) {
  let c = expr(0);
  if (MODE === 'chars') { c = ''; const k = 1 + Math.floor(rnd() * 14); for (let i = 0; i < k; i++) c += pick(PIECES); }
  if (rnd() < MUT) c = mutate(mutate(c));
  if (seen.has(c) || !c.isWellFormed()) continue;
  seen.add(c);
  const ast = s.parseFql(c);
  if (ast.error) { cases.push([c, 'E']); continue; }
  let res = '';
  for (const e of events) {
    let r; try { r = s.validate(ast, e) ? 't' : 'f'; } catch (x) { r = 'x'; }
    res += r;
  }
  cases.push([c, res]);
}
console.log(JSON.stringify({events, cases}));
