#!/usr/bin/env python
"""Fetch Mikolov's Penn Treebank split ("simple-examples") and extract the PTB text files.

Writes into DEST::

    ptb.char.train.txt  ptb.char.valid.txt  ptb.char.test.txt   (character level)
    ptb.train.txt       ptb.valid.txt       ptb.test.txt        (word level)

taken from the members ``simple-examples/data/<name>`` of the archive. The archive is
downloaded with urllib to a temporary file in DEST and renamed when complete, or read from
a local copy with ``--archive``. Members whose names are absolute or contain ``..`` (path
traversal), and wanted members that are not regular files, make the script refuse the
archive before anything is written.

The PTB text is LDC-licensed (Wall Street Journal): use it for experiments, do not commit it
or ship it in a package.

Examples
--------
    python scripts/download_ptb.py --dest data/ptb
    python scripts/download_ptb.py --archive ~/Downloads/simple-examples.tgz --dest data/ptb

Then train with ``--train data/ptb/ptb.char.train.txt --valid data/ptb/ptb.char.valid.txt``.
"""
import argparse
import hashlib
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
MEMBER_DIR = "simple-examples/data"
FILES = tuple(f"ptb.char.{s}.txt" for s in ("train", "valid", "test")) + \
    tuple(f"ptb.{s}.txt" for s in ("train", "valid", "test"))


class ArchiveError(Exception):
    """The archive is unusable (missing members, unsafe member names, not a tar file)."""


def _normalise(name):
    """Member name without leading ``./``; raises ArchiveError for absolute or ``..`` names."""
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"refusing archive member {name!r}: absolute path (path traversal)")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise ArchiveError(f"refusing archive member {name!r}: contains '..' (path traversal)")
    return posixpath.normpath(name.replace("\\", "/"))


def _copy_atomically(open_source, dest_file):
    """Copy the stream ``open_source()`` opens into a temporary file next to ``dest_file``,
    then rename it to ``dest_file`` (removed again on any error)."""
    dest_file = Path(dest_file)
    fd, tmp = tempfile.mkstemp(prefix=dest_file.name + ".", suffix=".part", dir=dest_file.parent)
    try:
        with os.fdopen(fd, "wb") as out, open_source() as src:
            shutil.copyfileobj(src, out, length=1 << 20)
        os.replace(tmp, dest_file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest_file


def download(url, dest_file, timeout=60.0):
    """Download ``url`` to a temporary file next to ``dest_file``, then rename it to ``dest_file``."""
    return _copy_atomically(lambda: urllib.request.urlopen(url, timeout=timeout), dest_file)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def extract(archive, dest, files=FILES, member_dir=MEMBER_DIR):
    """Extract ``member_dir/<name>`` for each name in ``files`` into ``dest`` (flat).

    Every member name is checked first; nothing is written if the archive is unsafe or a
    wanted member is missing. Each file is written to a temporary name and renamed.
    Returns the list of written paths.
    """
    dest = Path(dest)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"cannot read {str(archive)!r} as a tar archive ({exc})") from None
    with tar:
        found = {}
        for m in tar.getmembers():
            name = _normalise(m.name)
            d, base = posixpath.split(name)
            if d == member_dir and base in files:
                if not m.isfile():
                    raise ArchiveError(f"refusing archive member {m.name!r}: not a regular file")
                found[base] = m
        missing = [f for f in files if f not in found]
        if missing:
            raise ArchiveError(f"{str(archive)!r} lacks the members "
                               f"{', '.join(member_dir + '/' + f for f in missing)}; is it simple-examples.tgz?")
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for base in files:
            written.append(_copy_atomically(lambda b=base: tar.extractfile(found[b]), dest / base))
    return written


def build_parser():
    p = argparse.ArgumentParser(description="Download Mikolov's PTB archive (simple-examples.tgz) and extract"
                                " ptb.char.{train,valid,test}.txt and ptb.{train,valid,test}.txt.")
    p.add_argument("--url", default=DEFAULT_URL, help="archive URL (default: %(default)s)")
    p.add_argument("--dest", default="data/ptb", help="directory to write the text files to (default: %(default)s)")
    p.add_argument("--archive", default=None,
                   help="use this local simple-examples.tgz instead of downloading")
    p.add_argument("--keep-archive", action="store_true",
                   help="keep the downloaded archive as DEST/simple-examples.tgz")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default: %(default)s)")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    dest = Path(args.dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot create --dest {str(dest)!r}: {exc}", file=sys.stderr)
        return 1
    downloaded = None
    try:
        if args.archive is not None:
            archive = Path(args.archive)
            if not archive.is_file():
                print(f"error: --archive {str(archive)!r} does not exist", file=sys.stderr)
                return 1
        else:
            archive = dest / "simple-examples.tgz"
            print(f"downloading {args.url} ...", flush=True)
            try:
                downloaded = download(args.url, archive, timeout=args.timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                print(f"error: download of {args.url} failed ({exc}); fetch the archive by other means and pass"
                      " --archive PATH", file=sys.stderr)
                return 1
            print(f"downloaded {archive} ({archive.stat().st_size:,} bytes, sha256 {_sha256(archive)})")
        try:
            written = extract(archive, dest)
        except ArchiveError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    finally:
        if downloaded is not None and not args.keep_archive and downloaded.exists():
            downloaded.unlink()
    for path in written:
        print(f"wrote {path} ({path.stat().st_size:,} bytes, sha256 {_sha256(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
