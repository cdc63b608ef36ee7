"""Download, checksum and cache helpers shared by the dataset loaders (pooch does the transfer)."""
import hashlib
import os
import pathlib
import shutil
import tarfile


class DatasetError(RuntimeError):
    """A dataset could not be found, downloaded, verified or read; the message says what to do."""


def data_dir(override=None):
    """The dataset folder: `override`, else $MINICNN_DATA_DIR, else ~/.minicnn/datasets."""
    folder = override or os.environ.get("MINICNN_DATA_DIR") or "~/.minicnn/datasets"
    return pathlib.Path(folder).expanduser()


def md5_of(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path, md5):
    """Check a file's md5; a bad file is renamed to *.corrupt (never kept as if valid)."""
    got = md5_of(path)
    if got != md5:
        bad = pathlib.Path(str(path) + ".corrupt")
        os.replace(path, bad)
        raise DatasetError(f"{path} is truncated or tampered: md5 {got}, expected {md5}. It was moved to "
                           f"{bad}; put a good copy in its place (or delete it to download again).")


def download(url, md5, target, what):
    """Download url to target with a progress bar, verified by md5 (pooch deletes a bad download)."""
    import pooch
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(url, known_hash=f"md5:{md5}", fname=target.name, path=str(target.parent),
                       progressbar=True)
    except ValueError as e:                       # pooch: hash mismatch after download
        raise DatasetError(f"the download of {what} from {url} failed its md5 check and was removed: {e}") from None
    except Exception as e:                        # no network, refused, DNS, HTTP error
        raise DatasetError(
            f"could not download {what} from {url} ({type(e).__name__}: {e}).\n"
            f"Without network access, put the file {target.name} (md5 {md5}) into {target.parent} "
            "and run again.") from None
    return target


def extract_folder(archive, root, folder, required, what):
    """Extract the regular files under `folder`/ in a .tar.gz into root/folder, atomically.

    The files land in root/<folder>.partial, which is renamed to root/<folder> only once every name in
    `required` is there; members outside `folder`/, links, devices and paths with ".." are skipped,
    and each file is written under its base name (nothing can land outside the new folder).
    """
    archive, root = pathlib.Path(archive), pathlib.Path(root)
    target = root / folder
    if target.exists():
        missing = [f for f in required if not (target / f).exists()]
        raise DatasetError(f"{target} is incomplete (no {missing}): delete that folder and run again to "
                           f"extract {archive.name}")
    tmp = root / (folder + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith(folder + "/")
                       and ".." not in pathlib.PurePosixPath(m.name).parts]
            for m in members:
                src = tar.extractfile(m)
                with open(tmp / pathlib.PurePosixPath(m.name).name, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{archive} could not be extracted ({type(e).__name__}: {e}); delete it and "
                           "download again") from None
    missing = [f for f in required if not (tmp / f).exists()]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(f"{archive} does not hold the {what} {missing}")
    os.replace(tmp, target)
