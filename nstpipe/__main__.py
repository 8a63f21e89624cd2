"""``python -m nstpipe``: the same command line as the ``nstpipe`` script."""

from nstpipe.cli import main

if __name__ == "__main__":
    main()
