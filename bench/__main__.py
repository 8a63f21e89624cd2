"""``python -m bench <subcommand> [options]``: one parser, a subparser per module in COMMANDS."""

from __future__ import annotations

import argparse
import shlex
import sys
from types import ModuleType
from typing import Sequence

from bench import (
    chaos,
    clamp,
    colour,
    flow,
    frontier,
    hardware,
    image,
    judge,
    memory,
    modes,
    scaling,
    schedule,
    settling,
    sheet,
    texture,
    tiles,
    video,
    visualize,
)

COMMANDS: dict[str, ModuleType] = {
    "hardware": hardware,
    "image": image,
    "frontier": frontier,
    "schedule": schedule,
    "clamp": clamp,
    "colour": colour,
    "video": video,
    "flow": flow,
    "memory": memory,
    "scaling": scaling,
    "modes": modes,
    "texture": texture,
    "visualize": visualize,
    "chaos": chaos,
    "sheet": sheet,
    "tiles": tiles,
    "judge": judge,
    "settling": settling,
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = top.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    for name, module in COMMANDS.items():
        doc = module.__doc__ or ""
        child = sub.add_parser(name, help=doc.split("\n")[0], description=doc,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(child)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.command = shlex.join(["python", "-m", "bench", *argv])
    code: int = COMMANDS[args.subcommand].main(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
