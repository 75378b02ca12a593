"""Warm pools: sandboxes made before their run, for `umlpy run` to claim.

- ``wire.py``: what the front end, a pool and its sandboxes say (the front
  end imports it before anything else of umlpy's).
- ``pool.py``: the pool daemon: checks a run is a cold run's twin, hands
  it a spare, forks the next one.
- ``sandbox.py``: one spare: a guest kernel whose init becomes the run's
  program in place.
- ``commands.py``: umlpy warm start|stop|ls.
"""
