"""Pictures of a graph and of a run: pure functions from frozen specs or timings to text or dicts.

- `mermaid`: the graph as a Mermaid flowchart, a run as a Mermaid Gantt chart (text).
- `dot`: the graph in Graphviz DOT (text).
- `chrome_trace`: a run in the Trace Event format that Perfetto and chrome://tracing open (a dict).
- `gantt`: a run drawn with matplotlib to PNG or SVG (`pip install dagwire[plot]`).

`Dag.to_mermaid()`, `Dag.to_dot()`, `ExecutionResult.to_mermaid_gantt()`,
`ExecutionResult.to_chrome_trace()` and `ExecutionResult.plot_gantt()` are the public entry points;
none of these modules sees a running graph, and none imports an optional dependency at import time.
"""
