"""umlpy run: the command itself (used by the umlpy command line and by
umlpy trace, which runs a sandbox too).  Its options are the sandbox's
(umlpy/config/options.py)."""
from .errors import BadInput


def cmd_run(args, prepare=None):
    """args: the parsed words (cli.parse_options): .config, .argv.
    prepare(kernel), if given, runs before the guest starts (umlpy trace
    attaches its observer and hooks there)."""
    import os
    from .kernel import GuestKernel

    argv = args.argv
    if not argv:
        raise BadInput("umlpy run: no program given (usage: umlpy run [OPTIONS] -- PROG [ARGS])")
    import sys
    from .kernel.identity import enter_subordinate_namespace
    status = enter_subordinate_namespace(sys.argv[1:])
    if status is not None:
        return status       # the sandbox ran in the user's subordinate ids
    if getattr(args, "name", None) is not None:
        from .lifecycle.commands import run_named
        return run_named(args.name, args.option_words, argv, args.config)
    config = args.config
    kernel = GuestKernel(config=config)
    if config.breaks or config.log_level is not None:
        from .api.debugger import install_debugging     # only then: a plain run pays nothing
        install_debugging(kernel, config.breaks, config.log_level)
    if prepare is not None:
        prepare(kernel)
    env = dict(os.environ)
    env.update(config.environment)
    kernel.spawn(argv, env=env)
    return kernel.run()
