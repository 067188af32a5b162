"""Operating the bot: log context and structured logs (``context``, ``logs``), and the factories
that turn the settings into a metrics adapter and a tracer (``setup``).

The ports these serve live in the domain (``bot.domain.metrics``, ``bot.domain.tracing``,
``bot.domain.envelope``); the adapters that speak Prometheus, EMF and OTLP live in
``bot.adapters``.
"""
