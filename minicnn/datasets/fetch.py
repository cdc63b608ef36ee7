"""Download, checksum and cache helpers shared by the dataset loaders (pooch does the transfer)."""
import hashlib
import os
import pathlib


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
