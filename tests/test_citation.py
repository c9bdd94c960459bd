"""CITATION.cff is valid Citation File Format 1.2.0 and cites the paper.

The schema (tests/data/cff-schema-1.2.0.json) is the one cffconvert 2.0.0 ships
(cffconvert/schemas/1.2.0/schema.json; the schema itself is the Citation File Format
project's, CC-BY-4.0). cffconvert is not a dependency: it pins jsonschema < 4, which the
Jupyter packages of requirements.txt cannot share; the validation below is the same one.
"""
import json
from pathlib import Path

import pytest

import metaplastic

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[1]
SCHEMA = Path(__file__).resolve().parent / "data" / "cff-schema-1.2.0.json"


class _StringDates(yaml.SafeLoader):
    """YAML without timestamp conversion: CFF dates are strings to the schema."""


_StringDates.yaml_implicit_resolvers = {
    key: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


@pytest.fixture(scope="module")
def citation():
    with open(REPO / "CITATION.cff", encoding="utf-8") as f:
        return yaml.load(f, Loader=_StringDates)


def test_citation_file_matches_the_cff_1_2_0_schema(citation):
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"] == "https://citation-file-format.github.io/1.2.0/schema.json"
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = sorted(validator.iter_errors(citation), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file(citation):
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = {k: v for k, v in citation.items() if k != "authors"}
    broken["preferred-citation"] = dict(citation["preferred-citation"], doi="not a doi")
    assert len(list(jsonschema.Draft7Validator(schema).iter_errors(broken))) >= 2


def test_software_entry(citation):
    assert citation["cff-version"] == "1.2.0"
    assert citation["type"] == "software"
    assert citation["version"] == metaplastic.__version__


def test_preferred_citation_is_the_paper(citation):
    paper = citation["preferred-citation"]
    assert paper["type"] == "article"
    assert [(a["given-names"], a["family-names"]) for a in paper["authors"]] == [
        ("Axel", "Laborieux"), ("Maxence", "Ernoult"), ("Tifenn", "Hirtzlin"),
        ("Damien", "Querlioz")]
    assert paper["title"] == "Synaptic metaplasticity in binarized neural networks"
    assert paper["journal"] == "Nature Communications"
    assert (paper["volume"], paper["start"], paper["year"]) == (12, 2549, 2021)
    assert paper["doi"] == "10.1038/s41467-021-22768-y"


def test_cffconvert_accepts_it_when_installed():
    cffconvert = pytest.importorskip("cffconvert")
    from cffconvert.cli.create_citation import create_citation

    create_citation(str(REPO / "CITATION.cff"), None).validate()
    assert cffconvert is not None
