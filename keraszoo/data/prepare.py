"""``keraszoo data prepare``: TFDS's download-and-prepare into keraszoo's data folder, for a machine online.

Offline, TFDS retries each download for minutes before failing with a traceback; here every
download host is tried first (5 s), and an unreachable one is one line saying what to do
instead. Recipes themselves never download (``keraszoo.data.tfds_data``).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from keraszoo.data.folder import data_folder
from keraszoo.errors import DatasetNotFoundError


def _unreachable(urls, timeout_s: float) -> str | None:
    """The first download host that cannot be reached, with why; None if all answer."""
    for host in sorted({urlsplit(url).hostname for url in urls}):
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
        except OSError as error:
            return f"{host} ({error.strerror or error})"
    return None


def prepare(names: list[str], data_dir: str | None = None, *, timeout_s: float = 5.0) -> list[str]:
    """Prepares each dataset not yet prepared in the data folder; returns one line per dataset."""
    import tensorflow_datasets as tfds

    folder, source = data_folder(data_dir)
    lines = []
    for name in names:
        try:
            builder = tfds.builder(name, data_dir=folder)
        except tfds.core.registered.DatasetNotFoundError:
            raise DatasetNotFoundError(f"{name!r} is not a TFDS dataset name (keraszoo uses mnist and cifar10).") from None
        if builder.is_prepared():
            lines.append(f"{name} {builder.version}: already prepared in {folder} ({source})")
            continue
        urls = dict(builder.url_infos or {})
        megabytes = sum(int(info.size or 0) for info in urls.values()) / 2**20
        down = _unreachable(urls, timeout_s)
        if down:
            raise DatasetNotFoundError(
                f"cannot download {name}: {down} is unreachable from here. On a machine without internet, copy a "
                f"prepared TFDS data folder to {folder} or point TFDS_DATA_DIR / --data-dir at one.")
        print(f"preparing {name} {builder.version} in {folder} ({source}): downloading {megabytes:,.0f} MB ...",
              flush=True)
        builder.download_and_prepare()  # TFDS's own progress bars
        lines.append(f"{name} {builder.version}: prepared in {folder}")
    return lines
