"""docs/METHOD.md is what source comments cite: every cited section exists, and nothing in the
repository cites a specification that is not in it."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for folder in ("metaplastic", "continual_learning", "mnist_usps", "cifar_features",
                            "stream_fmnist", "stream_cifar10", "quadratic_binary_task", "tests")
           for p in (REPO / folder).rglob("*.py")] + [REPO / "reproduce.py", REPO / "plot_figures.py"]


def test_every_cited_section_of_method_md_exists():
    headings = re.findall(r"^## (\d+)\. ", (REPO / "docs" / "METHOD.md").read_text(), re.M)
    cited = set()
    for path in SOURCES:
        text = re.sub(r"\s+", " ", path.read_text())
        cited |= set(re.findall(r"docs/METHOD\.md sections? (\d+)", text))
    assert cited, "no source cites docs/METHOD.md"
    assert cited <= set(headings), f"cited sections missing from METHOD.md: {cited - set(headings)}"


def test_no_source_cites_a_spec_outside_the_repository():
    for path in SOURCES:
        if path.name == "test_method_doc.py":
            continue
        found = re.findall(r"\bSPEC\b(?: sections?)? ?\d", path.read_text())
        assert not found, f"{path.relative_to(REPO)} cites {found}"
