"""Export pre-trained encoders for use anywhere (timm, TorchGeo), and load them back.

An export directory holds, per modality, ``<modality>.safetensors`` (the timm backbone's
state dict, no classifier) and one ``rsmm-encoders.json``: architecture, ``in_chans``,
band names in order, per-band mean/std, the GSD the encoder was trained at (``gsd``)
and the sensor's native GSD per band (``native_gsd``), embedding size, rsmm version,
the task's hyper-parameters (``config``) and the run's resolved ``config.yaml``
(``run_config``); plus a short ``MODEL_CARD.md``. With ``format="torchgeo"`` it also
writes ``<modality>.torchgeo.pth``, a weights-only file that
``torchgeo.tasks.Classification(model=<arch>, weights=<file>, in_channels=<C>)`` (TorchGeo
>= 0.10; ``torchgeo.trainers.ClassificationTask`` on 0.8)
loads through torchgeo's ``extract_backbone``.

* :mod:`~rsmm.export.write`: :func:`export_encoders` (atomic: a temporary directory
  renamed into place);
* :mod:`~rsmm.export.card`: the model card;
* :mod:`~rsmm.export.run`: what the run folder of the checkpoint adds (metrics, config);
* :mod:`~rsmm.export.load`: :func:`load_encoder`.

Reading checkpoints and exports, and what a checkpoint is, live in
:mod:`rsmm.checkpoints` (re-exported here: :func:`read_checkpoint`, :func:`read_export`,
:func:`check_bands`, :func:`training_gsd`).
"""

from rsmm.checkpoints import META_FILE, check_bands, read_checkpoint, read_export, training_gsd
from rsmm.errors import ExportError
from rsmm.export.card import method_description, model_card
from rsmm.export.load import load_encoder
from rsmm.export.run import last_logged_metrics, run_directory
from rsmm.export.write import export_encoders

__all__ = [
    "META_FILE",
    "ExportError",
    "check_bands",
    "export_encoders",
    "last_logged_metrics",
    "load_encoder",
    "method_description",
    "model_card",
    "read_checkpoint",
    "read_export",
    "run_directory",
    "training_gsd",
]
