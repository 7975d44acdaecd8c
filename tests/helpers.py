"""Shared by the tests: a command's summary as its summary.json holds it, so a test reads a figure by name."""
from worldmodel.commands import run_command
from worldmodel.contracts.records import to_dict


def run_json(command: str, overrides: list[str]) -> dict:
    """Run ``wm <command> <overrides>`` in this process; its summary as the dict summary.json holds."""
    return to_dict(run_command(command, overrides))
