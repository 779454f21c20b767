"""The dataset sources a spec can name, one module each: ``folder:`` (:mod:`.folder`), ``tfrecords:``
(:mod:`.tfrecords`) and ``torchvision:`` (:mod:`.torchvision`) are :class:`Source` subclasses that
:func:`sb3_nas.data.loaders.load_source` decodes once into the cache; ``npz:`` (:mod:`.npz`) is read as it is.
"""

from sb3_nas.data.sources.base import EncodedImage, Source
from sb3_nas.data.sources.folder import FolderSource
from sb3_nas.data.sources.npz import load_npz
from sb3_nas.data.sources.tfrecords import TFRecordSource
from sb3_nas.data.sources.torchvision import TorchvisionSource

__all__ = ["EncodedImage", "FolderSource", "Source", "TFRecordSource", "TorchvisionSource", "load_npz"]
