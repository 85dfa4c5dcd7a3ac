"""Guards applied inside Crossbar's router process: workarounds for what Crossbar 26.10 lets clients do.

Our code does not otherwise run in the router worker. ``nodeconfig`` embeds
the component ``components.router_guard.component.RouterGuard`` in the router
worker (its ``components:``); Crossbar starts it after the realm and before
any transport listens, and it installs these guards (``patches.install``).
Each one is a minimal workaround, allowed by DESIGN §1, for a defect found in
Crossbar/autobahn; docs/router-guards.md says how each was found and tested,
and docs/upstream/ holds the reports with minimal reproductions.

1. **Deep WAMP frames** (``components.limits.too_deep_at``, ``messages.check_message``).
   autobahn decodes JSON with the pure-Python scanner
   (autobahn/wamp/serializer.py, ``_WAMPJsonDecoder``), and py_ecc, which
   Crossbar imports, raises the recursion limit to 100,000: one frame of
   80,000 ``[`` before HELLO recursed until RecursionError, the router then
   logged an 18 MB traceback (autobahn/wamp/websocket.py ``onMessage``,
   ``log.critical(traceback.format_exc())``) and served nobody for 80 s.
   Now a client's JSON frame is measured before it is parsed, msgpack and
   CBOR frames (whose C decoders stop by themselves at 1024 and 400 levels)
   right after, against ``router.max_message_depth``; a deeper one closes the
   connection (1008) with one log line. The recursion limit goes back to
   ``RECURSION_LIMIT``.
2. **A subscriber vanishing mid-fan-out** (``patches``: ``Router.send``).
   The broker's delivery loop (crossbar/router/broker.py ``_notify_some``)
   catches only PayloadExceededError; a receiver whose WebSocket is closing
   raises ``Disconnected`` and the loop ends, so the subscribers after it
   miss an event whose publisher was already acknowledged. An EVENT to a
   closed receiver is now skipped (logged at debug).
3. **Slow clients** (``patches``: the client transport's ``send``). Nothing in
   autobahn or Twisted bounds what waits to be written to a client that stops
   reading; only the WebSocket ping timeout drops it, seconds and megabytes
   later. A client with more than ``router.max_client_buffer`` bytes waiting
   is disconnected at once (``transport.pending_bytes``).
4. **Values our components cannot receive** (``messages.check_message``).
   The router forwards a call's arguments to our components over msgpack;
   an integer outside signed 64 bits (or a CBOR-only value, a non-string map
   key) fails to pack there (crossbar/router/dealer.py ``_call``, in a
   Deferred callback nobody waits on) and the call is never answered. The
   caller now gets ``gateway.error.invalid_argument`` naming the argument.
5. **Disclosure and registering** (``patches``). Crossbar puts the callee's
   session, authid and role in every RESULT (crossbar/router/dealer.py,
   ``disclose = True  # FIXME`` in ``processYield``): removed from what
   clients receive, as the router's ``x_cb_*`` details in WELCOME. A
   REGISTER the authorizer refuses is answered by the conflict checks when
   the procedure exists (``processRegister`` builds its not_authorized reply
   but does not send it): now not_authorized, always.
6. **Connections per client address** (``addresses``). Crossbar's
   ``max_connections`` (in its websocket options) is not enforced (a FIXME in
   crossbar/router/protocol.py); ``router.max_connections_per_address`` is,
   with X-Forwarded-For believed from ``router.trusted_proxies`` only. The
   Origin allow-list needs no code: it is Crossbar's own websocket option
   ``allowed_origins``, rendered by ``nodeconfig`` (``origins``).

The pure parts import neither Crossbar nor autobahn (nor Twisted) and are
unit-tested without a router; ``patches`` and ``component`` are the glue.
Never imports (``messages``, ``origins``, ``addresses``, ``transport``,
``settings``: the pure parts): ``crossbar``, ``autobahn``, ``twisted``.

May import: ``components.limits`` (the depth and integer rules every way in
applies), ``components.uris``, ``components.heap`` (the router's heap frozen once
started). ``components.config`` and
``components.nodeconfig`` import ``addresses``, ``origins`` and ``settings``,
not the other way round.
"""
