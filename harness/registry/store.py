"""The content-addressed adapter store: `<root>/<sha256>/` holds an adapter's files and a
`manifest.json` listing every file's sha256 and size.

An adapter's hash is the sha256 of its manifest lines (`<file sha256>  <relative path>\\n`,
sorted by path; the format of `sha256sum`), so the same files always land in the same folder
and storing an adapter twice keeps one copy. A write goes to `<root>/.tmp-<host>-<pid>-<rand>/`
and is renamed into place only once complete, so a crash never leaves a half-written `<sha256>/`
visible; leftovers from dead writers are ignored and swept by `clean()`. Every load re-hashes
every file: a changed byte, a missing or extra file, or an edited manifest refuses the load
and names the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from pathlib import Path

from harness.models.fingerprint import PICKLE_SUFFIXES, adapter_identity
from harness.paths import harness_home
from harness.registry.errors import NotFound, RegistryError, TamperedAdapter

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 2
TMP_PREFIX = ".tmp-"
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
STALE_TMP_S = 24 * 3600  # a temp folder this old is abandoned whoever wrote it


def default_store_root() -> Path:
    """`$HARNESS_ADAPTERS_STORE` if set, else `$HARNESS_HOME/adapters_store`."""
    env = os.environ.get("HARNESS_ADAPTERS_STORE")
    return Path(env).expanduser() if env else harness_home() / "adapters_store"


def content_hash(files: dict[str, dict], fmt: int = MANIFEST_FORMAT) -> str:
    """The adapter hash from its manifest entries ({relative path: {"sha256", "size"}}): the same
    identity `adapter_fingerprint` gives the folder (format 2); format 1 manifests hashed every file."""
    if fmt >= 2:
        return adapter_identity({r: f["sha256"] for r, f in files.items()})
    lines = "".join(f"{files[p]['sha256']}  {p}\n" for p in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def copy_and_hash(src: Path, dst: Path) -> tuple[str, int]:
    """Copy one file, hashing the bytes as they are written; fsync before returning."""
    h, size = hashlib.sha256(), 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(CHUNK):
            h.update(chunk)
            fout.write(chunk)
            size += len(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest(), size


def hash_file(path: Path) -> tuple[str, int]:
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _publish(tmp: Path, final: Path) -> None:
    """The one step that makes an adapter visible: an atomic rename within one folder."""
    os.rename(tmp, final)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)




class AdapterStore:
    """Adapters on disk, addressed by content hash. Holds files only; the registry holds rows."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser().resolve() if root else default_store_root().resolve()

    def __repr__(self) -> str:
        return f"AdapterStore({str(self.root)!r})"

    # ---- layout ----------------------------------------------------------------------------
    def path_for(self, adapter_hash: str) -> Path:
        """The folder an adapter lives in (not checked; see `verify`)."""
        if not HASH_RE.match(adapter_hash or ""):
            raise RegistryError(f"{adapter_hash!r} is not an adapter hash (64 lowercase hex characters)")
        return self.root / adapter_hash

    def hashes(self) -> list[str]:
        """Every adapter folder present; temp folders from unfinished writes are not adapters."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and HASH_RE.match(p.name))

    def __contains__(self, adapter_hash: str) -> bool:
        return bool(HASH_RE.match(adapter_hash or "")) and (self.root / adapter_hash).is_dir()

    # ---- writing ---------------------------------------------------------------------------
    def put(self, folder: str | Path) -> tuple[str, dict]:
        """Store an adapter folder; return (hash, {"size_bytes", "n_files", "path"}).

        Storing the same files again returns the same hash and writes nothing new. A stored copy
        that fails verification is replaced by the fresh one.
        """
        src = Path(folder).expanduser()
        names, rels = _adapter_files(src)
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean()
        tmp = self.root / f"{TMP_PREFIX}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            files = {}
            for path, rel in zip(names, rels):
                dst = tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                sha, size = copy_and_hash(path, dst)
                files[rel] = {"sha256": sha, "size": size}
            digest = content_hash(files)
            manifest = {"format": MANIFEST_FORMAT, "hash": digest, "files": files}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            _fsync_dir(tmp)
            final = self.root / digest
            if final.is_dir():
                if not self.problems(digest):
                    shutil.rmtree(tmp)
                    return digest, self._info(files, final)
                # a damaged copy: move it aside atomically, then publish the fresh one
                aside = self.root / f"{TMP_PREFIX}damaged-{digest[:12]}-{secrets.token_hex(4)}"
                os.rename(final, aside)
                shutil.rmtree(aside, ignore_errors=True)
            try:
                _publish(tmp, final)
            except OSError:
                # another process published the same content between our check and rename
                if final.is_dir() and not self.problems(digest):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return digest, self._info(files, final)
                raise
            _fsync_dir(self.root)
            return digest, self._info(files, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    @staticmethod
    def _info(files: dict, final: Path) -> dict:
        return {"size_bytes": sum(f["size"] for f in files.values()), "n_files": len(files), "path": str(final)}

    def clean(self) -> list[str]:
        """Remove temp folders whose writer is gone (dead pid on this host, or older than a day)."""
        removed = []
        if not self.root.is_dir():
            return removed
        host = socket.gethostname()
        for p in self.root.iterdir():
            if not p.name.startswith(TMP_PREFIX):
                continue
            m = re.match(rf"^{re.escape(TMP_PREFIX)}(.+)-(\d+)-[0-9a-f]+$", p.name)
            dead = False
            if m and m.group(1) == host:
                dead = not _pid_alive(int(m.group(2)))
            try:
                old = time.time() - p.stat().st_mtime > STALE_TMP_S
            except FileNotFoundError:
                continue
            if dead or old or p.name.startswith(f"{TMP_PREFIX}damaged-"):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
        return removed

    def remove(self, adapter_hash: str) -> bool:
        """Delete a stored adapter's folder (renamed aside first so it vanishes atomically)."""
        final = self.path_for(adapter_hash)
        if not final.is_dir():
            return False
        aside = self.root / f"{TMP_PREFIX}damaged-{adapter_hash[:12]}-{secrets.token_hex(4)}"
        os.rename(final, aside)
        shutil.rmtree(aside, ignore_errors=True)
        return True

    # ---- reading ---------------------------------------------------------------------------
    def manifest(self, adapter_hash: str) -> dict:
        return json.loads((self.path_for(adapter_hash) / MANIFEST).read_text())

    def problems(self, adapter_hash: str) -> list[tuple[str | None, str]]:
        """Everything wrong with a stored adapter, as (file or None, description); [] when intact."""
        folder = self.path_for(adapter_hash)
        if not folder.is_dir():
            return [(None, f"its folder {folder} is missing")]
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            files = manifest["files"]
            assert isinstance(files, dict) and files
        except FileNotFoundError:
            return [(MANIFEST, f"{MANIFEST} is missing")]
        except (ValueError, KeyError, TypeError, AssertionError):
            return [(MANIFEST, f"{MANIFEST} is unreadable or has no file list")]
        out: list[tuple[str | None, str]] = []
        fmt = manifest.get("format", 1) if isinstance(manifest.get("format", 1), int) else 1
        if content_hash(files, fmt) != adapter_hash:
            out.append((MANIFEST, f"{MANIFEST} was edited: its entries hash to {content_hash(files, fmt)[:12]}, not to the folder name"))
        for link in sorted(p for p in folder.rglob("*") if p.is_symlink()):
            rel = link.relative_to(folder).as_posix()
            out.append((rel, f"{rel} is a symlink (to {os.readlink(link)}): a stored adapter holds only its own files"))
        for rel, want in sorted(files.items()):
            path = folder / rel
            if path.is_symlink():
                continue  # reported above, whatever it points at
            if not path.is_file():
                out.append((rel, f"{rel} is missing"))
                continue
            sha, size = hash_file(path)
            if size != want.get("size") or sha != want.get("sha256"):
                out.append((rel, f"{rel} does not match the manifest (sha256 {sha[:12]}, size {size}; "
                                 f"expected {str(want.get('sha256'))[:12]}, size {want.get('size')})"))
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        for rel in sorted(present - set(files) - {MANIFEST}):
            out.append((rel, f"{rel} is not in the manifest"))
        return out

    def verify(self, adapter_hash: str) -> Path:
        """The adapter's folder after every file was re-hashed; `TamperedAdapter` names what is wrong."""
        found = self.problems(adapter_hash)
        if not found:
            return self.path_for(adapter_hash)
        file, first = found[0]
        more = f" (and {len(found) - 1} more problem(s))" if len(found) > 1 else ""
        raise TamperedAdapter(
            f"adapter {adapter_hash[:12]} in {self.root} is damaged, refusing to load it: {first}{more}. "
            "Store it again from its source folder, or roll the channel back; `harness verify` checks every adapter",
            adapter_hash, [p for _, p in found], file,
        )

    def get(self, adapter_hash: str) -> Path:
        """Like `verify`, but a hash the store has never held is `NotFound`."""
        if adapter_hash not in self:
            raise NotFound(f"adapter {adapter_hash[:12]} is not in the store at {self.root}")
        return self.verify(adapter_hash)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _adapter_files(src: Path) -> tuple[list[Path], list[str]]:
    """The files of an adapter folder and their relative names, once it is known to be one the
    store accepts: safetensors weights, no pickles, no symlink out of it, no manifest of its own."""
    if not src.is_dir():
        raise RegistryError(f"{src}: adapter folder not found (expected a folder with adapter_config.json and weights)")
    names = sorted(p for p in src.rglob("*") if p.is_file())
    rels = [p.relative_to(src).as_posix() for p in names]
    if not names:
        raise RegistryError(f"{src}: the adapter folder holds no files")
    if MANIFEST in rels:
        raise RegistryError(f"{src}/{MANIFEST}: the store writes its own {MANIFEST}; rename or remove this file first")
    root = src.resolve()
    for p in sorted(q for q in src.rglob("*") if q.is_symlink()):
        if not p.resolve().is_relative_to(root):
            raise RegistryError(f"{p}: a symlink out of the adapter folder (to {p.resolve()}); refusing to copy what it "
                                "points at into the store. Replace it with the file itself")
    pickles = [r for r in rels if r.rsplit(".", 1)[-1].lower() in PICKLE_SUFFIXES]
    if pickles:
        raise RegistryError(f"{src}/{pickles[0]}: pickle weights are refused (loading them can run code); "
                            "save the adapter with safetensors (peft's save_pretrained does by default)")
    if not any(r.endswith(".safetensors") for r in rels):
        raise RegistryError(f"{src}: no .safetensors weights in the adapter folder (found {', '.join(rels[:5])})")
    return names, rels
