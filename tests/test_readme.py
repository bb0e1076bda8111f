"""The README's commands are the truth: CI runs its test command, the API it names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def readme_commands():
    block = re.search(r"## Quick start.*?```bash\n(.*?)\n```.*?```bash\n(.*?)\n```", README, re.S)
    assert block, "the Quick start section lost its two commands"
    return block.group(1).strip(), block.group(2).strip()


def test_ci_runs_the_readme_test_command():
    main_command, test_command = readme_commands()
    assert main_command.endswith("napari-unet demo")
    assert "pytest" in test_command
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def test_the_python_api_section_runs_as_written():
    api = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(api, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert sum(p.numel() for p in namespace["net"].parameters()) == 31_030_658
    assert sum(p.numel() for p in namespace["light"].parameters()) == 481_762
    config = namespace["net"].config
    assert namespace["output_size"](config, 572) == 388
    assert namespace["nearest_valid_input_sizes"](config, 570) == (556, 572)
    assert namespace["valid_input_sizes"](config, 500, 600)[:2] == [508, 524]
