"""umlpy as an OCI runtime: `umlpy-oci`, runc's command line, so that
container engines (podman, docker, containerd) run their containers in a
umlpy sandbox, as they run gVisor's with runsc.

- cli.py: the command line (runc's global options and commands), errors
  as one line on stderr and runc's JSON lines in --log;
- state.py: the containers' directory (--root) and each container's
  state.json (the runtime spec's `state`);
- config.py: a bundle's config.json -> umlpy's Config and the container
  process, refusing in one line what umlpy cannot honour;
- server.py: the daemon's control server with the container's own
  requests (the process held from create, released by start);
- commands.py: create, start, state, kill, delete, features;
- execute.py: exec and ps;
- console.py: --console-socket (a terminal's master to the engine).

A container is a named sandbox's daemon (umlpy/lifecycle/) whose record
lives in the container's directory: see docs/ARCHITECTURE.md, "OCI
runtime"."""
