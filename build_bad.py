import asyncio, contextlib, functools
import dagwire
from dagwire import build_dag, Retry, Limiter, CircuitBreaker, Cache, DagDefinitionError
async def a1(x): return x
def s1(x): return x
async def ag(x):
    yield x
def sg(x):
    yield x
@contextlib.asynccontextmanager
async def acm(x): yield x
cases = []
def case(desc, f):
    cases.append((desc, f))
def mk():
    d = build_dag(int)
    return d
def tryit(desc, fn):
    with build_dag(int, name='bad') as dag:
        src = dag.add_node(lambda p: p, dag.params, name='src')
        try:
            r = fn(dag, src)
            print(f"ACCEPTED  {desc}: {r}")
        except DagDefinitionError as e:
            print(f"refused   {desc}: {e}")
        except Exception as e:
            print(f"OTHER ERR {desc}: {type(e).__name__}: {e}")
T = [
 ("timeout=-1", lambda d,s: d.add_node(a1, s, timeout=-1)),
 ("timeout=0", lambda d,s: d.add_node(a1, s, timeout=0)),
 ("timeout=nan", lambda d,s: d.add_node(a1, s, timeout=float('nan'))),
 ("timeout=inf", lambda d,s: d.add_node(a1, s, timeout=float('inf'))),
 ("timeout='5'", lambda d,s: d.add_node(a1, s, timeout='5')),
 ("timeout=True", lambda d,s: d.add_node(a1, s, timeout=True)),
 ("retry=0", lambda d,s: d.add_node(a1, s, retry=0)),
 ("retry=True", lambda d,s: d.add_node(a1, s, retry=True)),
 ("retry=2.5", lambda d,s: d.add_node(a1, s, retry=2.5)),
 ("Retry(initial_delay=-1)", lambda d,s: d.add_node(a1, s, retry=Retry(initial_delay=-1))),
 ("Retry(initial_delay=nan)", lambda d,s: d.add_node(a1, s, retry=Retry(initial_delay=float('nan')))),
 ("Retry(backoff=0)", lambda d,s: d.add_node(a1, s, retry=Retry(backoff=0))),
 ("Retry(backoff=-2)", lambda d,s: d.add_node(a1, s, retry=Retry(backoff=-2))),
 ("Retry(max_delay=-1)", lambda d,s: d.add_node(a1, s, retry=Retry(max_delay=-1))),
 ("Retry(max_delay=inf)", lambda d,s: d.add_node(a1, s, retry=Retry(max_delay=float('inf')))),
 ("Retry(on=ValueError) not tuple", lambda d,s: d.add_node(a1, s, retry=Retry(on=ValueError))),
 ("Retry(on=(CancelledError,))", lambda d,s: d.add_node(a1, s, retry=Retry(on=(asyncio.CancelledError,)))),
 ("Retry(on=(KeyboardInterrupt,))", lambda d,s: d.add_node(a1, s, retry=Retry(on=(KeyboardInterrupt,)))),
 ("Retry(on=())", lambda d,s: d.add_node(a1, s, retry=Retry(on=()))),
 ("Retry(on=('x',))", lambda d,s: d.add_node(a1, s, retry=Retry(on=('x',)))),
 ("Retry(attempts=10**6 initial huge backoff)", lambda d,s: Retry(attempts=2000, backoff=10.0).delay(1500)),
 ("cleanup_timeout on async node without post", lambda d,s: d.add_node(a1, s, cleanup_timeout=1)),
 ("cleanup_timeout=-1 with async post", lambda d,s: d.add_node(a1, s, post=a1, cleanup_timeout=-1)),
 ("executor on async", lambda d,s: d.add_node(a1, s, executor='thread')),
 ("executor='process'", lambda d,s: d.add_node(s1, s, executor='process')),
 ("executor=42", lambda d,s: d.add_node(s1, s, executor=42)),
 ("timeout on sync inline", lambda d,s: d.add_node(s1, s, timeout=1)),
 ("release on add_node", lambda d,s: d.add_node(a1, s, release='early')),
 ("release='sometime'", lambda d,s: d.add_resource(ag, s, release='sometime')),
 ("generator to add_node", lambda d,s: d.add_node(ag, s)),
 ("sync gen to add_node", lambda d,s: d.add_node(sg, s)),
 ("async def to add_resource", lambda d,s: d.add_resource(a1, s)),
 ("coroutine object", lambda d,s: d.add_node(a1(1))),
 ("too many inputs", lambda d,s: d.add_node(a1, s, s, s)),
 ("too few inputs (two missing)", lambda d,s: d.add_node(lambda a,b,c: 1, s)),
 ("kwonly required", lambda d,s: d.add_node(lambda a,*,k: 1, s)),
 ("limiter=3", lambda d,s: d.add_node(a1, s, limiter=3)),
 ("Limiter(0)", lambda d,s: Limiter(0)),
 ("Limiter(True)", lambda d,s: Limiter(True)),
 ("breaker='x'", lambda d,s: d.add_node(a1, s, breaker='x')),
 ("CircuitBreaker(fail_max=0)", lambda d,s: CircuitBreaker(fail_max=0)),
 ("CircuitBreaker(reset_timeout=nan)", lambda d,s: CircuitBreaker(reset_timeout=float('nan'))),
 ("Cache(ttl=-1)", lambda d,s: Cache(ttl=-1)),
 ("Cache(ttl=nan)", lambda d,s: Cache(ttl=float('nan'))),
 ("Cache(maxsize=-1)", lambda d,s: Cache(maxsize=-1)),
 ("Cache(maxsize=1.5)", lambda d,s: Cache(maxsize=1.5)),
 ("cache on resource", lambda d,s: d.add_resource(ag, s, cache=Cache())),
 ("cache with post", lambda d,s: d.add_node(a1, s, cache=Cache(), post=lambda: None)),
 ("cache='yes'", lambda d,s: d.add_node(a1, s, cache='yes')),
 ("add_map cache", lambda d,s: d.add_map(a1, [1], cache=Cache())),
 ("add_map limit=0", lambda d,s: d.add_map(a1, [1], limit=0)),
 ("add_map limit=True", lambda d,s: d.add_map(a1, [1], limit=True)),
 ("add_map release", lambda d,s: d.add_map(a1, [1], release='early')),
 ("add_map with generator fn", lambda d,s: d.add_map(ag, [1])),
 ("add_map fn arity 0", lambda d,s: d.add_map(lambda: 1, [1])),
 ("add_map timeout on sync", lambda d,s: d.add_map(s1, [1], timeout=1)),
 ("join with timeout", lambda d,s: d.join(s, timeout=1)),
 ("join with non-node", lambda d,s: d.join(5)),
 ("join with nothing", lambda d,s: d.join()),
 ("after=5", lambda d,s: d.add_node(a1, s, after=5)),
 ("after=self-node-list with str", lambda d,s: d.add_node(a1, s, after=['src'])),
 ("name=''", lambda d,s: d.add_node(a1, s, name='')),
 ("name=5", lambda d,s: d.add_node(a1, s, name=5)),
 ("name dup 'src'", lambda d,s: d.add_node(a1, s, name='src')),
 ("name 'params'", lambda d,s: d.add_node(a1, s, name='params')),
 ("tags=5", lambda d,s: d.add_node(a1, s, tags=5)),
 ("tags=[1,2]", lambda d,s: d.add_node(a1, s, tags=[1,2])),
 ("pre=5", lambda d,s: d.add_node(a1, s, pre=5)),
 ("pre two required args", lambda d,s: d.add_node(a1, s, pre=lambda a,b: None)),
 ("post=generator fn", lambda d,s: d.add_node(a1, s, post=sg)),
 ("pre=async gen fn", lambda d,s: d.add_node(a1, s, pre=ag)),
 ("misspelt retires", lambda d,s: d.add_node(a1, s, retires=3)),
 ("fallback with skip?", lambda d,s: d.add_node(a1, s, fallback=None)),
 ("timeout on sync gen resource", lambda d,s: d.add_resource(sg, s, timeout=1)),
 ("cleanup_timeout on sync gen resource", lambda d,s: d.add_resource(sg, s, cleanup_timeout=1)),
 ("executor on async gen resource", lambda d,s: d.add_resource(ag, s, executor='thread')),
 ("timeout lambda resource", lambda d,s: d.add_resource(lambda x: acm(x), s, timeout=1)),
 ("cleanup_timeout + sync post on resource", lambda d,s: d.add_resource(ag, s, post=lambda: None, cleanup_timeout=1)),
 ("max arity 25 inputs", lambda d,s: d.add_node(lambda *a: 1, *([s]*25))),
 ("dag itself as node of itself? (building)", lambda d,s: d.add_node(d, s)),
 ("unfrozen other dag as node", lambda d,s: d.add_node(build_dag(int)._dag if hasattr(build_dag(int),'_dag') else None, s)),
 ("add_immediate_node(node)", lambda d,s: d.add_immediate_node(s)),
 ("class not CM to add_resource", lambda d,s: d.add_resource(int, s)),
 ("add_node(print builtin)", lambda d,s: d.add_node(print, s)),
 ("partial of generator to add_node", lambda d,s: d.add_node(functools.partial(ag), s)),
 ("partial of async gen as resource w/ executor", lambda d,s: d.add_resource(functools.partial(ag), s, executor='thread')),
 ("executor=ThreadPoolExecutor on async resource cm", lambda d,s: d.add_resource(acm, s, executor='thread')),
 ("limiter w/ join via after", lambda d,s: d.add_node(a1, d.join(s), limiter=Limiter(1))),
 ("add_map items=5 int not iterable constant", lambda d,s: d.add_map(a1, 5)),
 ("add_map items=set constant", lambda d,s: d.add_map(a1, {1,2})),
]
for desc, f in T: tryit(desc, f)
