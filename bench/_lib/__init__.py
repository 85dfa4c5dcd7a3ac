"""What the benchmark scripts share; each script keeps only its own measurement and command line.

- ``nodes``: a benchmark run (``run_benchmark``) that starts gateway nodes and bare Crossbar routers
  on free ports and stops them, and every subscriber process, on any way out;
- ``websocket``: the client side of RFC 6455, just enough for WAMP, under the light clients;
- ``subscribers``: light WAMP subscribers in processes of their own, counting deliveries;
- ``publishers``: the open-loop drivers: keep-alive HTTP, and a backend session on the bare router;
- ``cpu``: CPU per process group (router, our workers, this process, the rest of the machine);
- ``stats``: latency histograms and percentiles;
- ``report``: the header line, Markdown tables, rates and CPU cells.

May import: ``tests.support`` (its node harness starts the nodes), ``components.uris``,
``components.envelope`` (the light clients speak WAMP to the gateway by hand). The benchmark
scripts (``bench``) import this, not the other way round. Never imports: ``autobahn.twisted`` (the clients
are asyncio).
"""
