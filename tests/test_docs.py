"""The docs cite only files that are in the repository, and stay short enough to read."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITED = re.compile(r"(?<![\w./-])((?:docs|benchmarks|tests|scripts)/[\w./-]*\w\.(?:md|py|sh|png))")


def cited_paths():
    sources = [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("src/**/*.py")]
    sources += [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("benchmarks/*.sh")]
    for source in sources:
        for match in CITED.finditer(source.read_text()):
            yield source.relative_to(ROOT), match.group(1)


def test_every_cited_file_exists():
    cited = list(cited_paths())
    assert len(cited) > 20  # the pattern finds the citations
    missing = sorted({f"{source}: {path}" for source, path in cited if not (ROOT / path).exists()})
    assert not missing, missing


def test_results_and_architecture_stay_short():
    assert len((ROOT / "docs" / "results.md").read_text().splitlines()) < 250
    assert len((ROOT / "docs" / "architecture.md").read_text().splitlines()) < 150


def test_decisions_are_dated_and_say_what_was_measured():
    decisions = sorted((ROOT / "docs" / "decisions").glob("*.md"))
    assert len(decisions) >= 10
    for path in decisions:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+\.md", path.name), path.name
        text = path.read_text()
        assert text.startswith("# "), path.name
        if "not-adopted" not in path.name:
            assert "**Chosen.**" in text and "**Measurement.**" in text, path.name


def test_the_readme_gives_other_clusters_the_workers_settings_of_the_local_one():
    import dask
    import yaml

    from napari_unet.slides import WORKER_CONFIG

    readme = (ROOT / "README.md").read_text()
    block = readme.split("napari-unet.yaml")[1].split("```yaml\n")[1].split("```")[0]
    settings = yaml.safe_load(block)
    with dask.config.set(settings):
        for key, value in WORKER_CONFIG.items():
            assert dask.config.get(key) == value, key
