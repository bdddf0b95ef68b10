"""The stream processor: Faust agents, their timers and web pages, wired by ``app.make_app``."""
