"""Data files of hub datasets: `hf://datasets/org/name[@revision]/path/in/repo`.

The address is huggingface_hub's own (`HfFileSystem`, and `datasets` data_files); a file is
fetched once into huggingface_hub's cache (`hf_hub_download`), or found there when
`HF_HUB_OFFLINE=1`, and then read like a local file (`harness.data.tables`). The local path is a
snapshot folder named by the commit (`.../datasets--org--name/snapshots/<commit>/...`), so the
revision a run read is in its record even when it named a branch.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.errors import ConfigError
from harness.models.specs import hub_offline as _offline

PREFIX = "hf://"
_ADDRESS = re.compile(r"^hf://datasets/(?P<repo>[\w.-]+(?:/[\w.-]+)?)(?:@(?P<revision>[\w.-]+))?(?:/(?P<file>.*))?$")
FORM = "hf://datasets/org/name[@revision]/path/to/file.parquet"


def is_hub_address(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def _data_files(repo: str, revision: str | None) -> list[str] | None:
    """The data files of the repo at `revision` (from the cache when offline), None when unknown."""
    from huggingface_hub import HfApi, snapshot_download

    from harness.data.tables import DATA_SUFFIXES

    try:
        if _offline():
            folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision, local_files_only=True))
            names = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
        else:
            names = HfApi().list_repo_files(repo, repo_type="dataset", revision=revision)
    except Exception:  # not cached, no network: the caller's message says what is known
        return None
    return sorted(n for n in names if n.lower().endswith(DATA_SUFFIXES))


def _choose(repo: str, revision: str | None, at: str, files: list[str] | None = None) -> str:
    files = _data_files(repo, revision) if files is None else files
    if files:
        shown = ", ".join(files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
        return f"name one of its data files: {shown} (e.g. hf://datasets/{at}/{files[0]})"
    return f"name a data file in it: {FORM}"


def fetch(address: str) -> Path:
    """The local file behind a hub dataset address, downloaded once (or from the cache offline)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from harness.data.tables import DATA_SUFFIXES

    m = _ADDRESS.match(address.strip())
    if not m:
        raise ConfigError(f"{address!r} is not a hub dataset address: write {FORM}")
    repo, revision, file = m["repo"], m["revision"], (m["file"] or "").strip("/")
    at = f"{repo}@{revision}" if revision else repo
    if not file or not file.lower().endswith(DATA_SUFFIXES):
        what = "names no file" if not file else f"names {file!r}, not a JSONL, Parquet, CSV/TSV or JSON file"
        raise ConfigError(f"{address}: {what}; {_choose(repo, revision, at)}")
    if ".." in Path(file).parts:
        raise ConfigError(f"{address}: '..' in the path: name a file inside the dataset")
    try:
        return Path(hf_hub_download(repo, file, repo_type="dataset", revision=revision, local_files_only=_offline()))
    except RevisionNotFoundError:
        raise ConfigError(f"{address}: hub dataset {repo!r} has no revision {revision!r}: check the branch, tag or commit") from None
    except LocalEntryNotFoundError:
        which = f"revision {revision!r}" if revision else "its main revision"
        files = _data_files(repo, revision)  # listed once: offline, what the cache holds
        hint = _choose(repo, revision, at, files) if files else (
            "download it where the network allows (huggingface_hub.hf_hub_download(..., repo_type='dataset')), "
            "or give a local file")
        raise ConfigError(f"{address}: {file!r} of hub dataset {at!r} ({which}) is not in the local cache and "
                          f"HF_HUB_OFFLINE=1 forbids downloading; {hint}") from None
    except EntryNotFoundError:
        raise ConfigError(f"{address}: hub dataset {at!r} has no file {file!r}; {_choose(repo, revision, at)}") from None
    except RepositoryNotFoundError:
        raise ConfigError(f"{address}: no hub dataset {repo!r} (or it is private: log in with `hf auth login`)") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise ConfigError(f"{address}: could not be fetched ({type(e).__name__}): check the address and the network, "
                          "or give a local file") from None


def commit_of(path: str | Path) -> str | None:
    """The commit a fetched hub file was read at (its snapshot folder's name), None for a local file."""
    parts = Path(path).parts
    if "snapshots" in parts:
        i = parts.index("snapshots")
        if i > 0 and parts[i - 1].startswith("datasets--") and i + 1 < len(parts):
            return parts[i + 1]
    return None
