import pytest

from pipeline.forces import (
    canonical_force,
    match_force,
    read_manifest,
    resolve_force,
    territorial_forces,
)


def test_there_are_43_territorial_forces():
    assert len(territorial_forces()) == 43


@pytest.mark.parametrize("text, force", [
    ("Avon & Somerset Constabulary", "Avon and Somerset"),
    ("the Met", "Metropolitan"),
    ("MPS response", "Metropolitan"),
    ("north_wales_response_final", "North Wales"),
    ("South Wales Police and North Wales Police", "South Wales"),
    ("Office of the Police and Crime Commissioner for Sussex", "Sussex"),
])
def test_aliases_resolve_to_canonical_names(text, force):
    assert match_force(text) == force


def test_lowercase_abbreviations_are_not_mistaken_for_forces():
    assert match_force("we met the victims and their gmp") is None


def test_resolution_order_is_manifest_then_filename_then_text(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,force\nResponse_final.docx,Kent Police\n")
    mapping = read_manifest(manifest)
    assert resolve_force("x/Response_final.docx", "Essex Police", mapping) == "Kent"
    assert resolve_force("x/Durham response.pdf", "Essex Police") == "Durham"
    assert resolve_force("x/Response_final.docx", "Essex Police letterhead") == "Essex"
    assert resolve_force("x/Response_final.docx", "no force here") == "unknown"
    assert canonical_force("Nonsense Constabulary") == "unknown"
