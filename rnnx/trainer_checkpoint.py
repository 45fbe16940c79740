"""The Trainer's checkpoint files: ``Trainer.save_checkpoint(path)`` and
``Trainer.from_checkpoint(path)`` (rnnx/trainer.py) call save and load here.

A checkpoint is one .npz: the model's parameters ("param/<name>"), the optimizer's state
("optimizer/<slot>/<parameter name>"), the carried state ("carried/<recurrent layer>/<part>")
and a JSON header (CHECKPOINT_KEY) with the architecture, loss, optimizer, schedule, the
trainer's options and counts, and the random generators' states."""
import json
import os

import numpy as np

from . import io as _io
from ._files import write_atomic
from .losses import LOSSES
from .lr_scheduler import SCHEDULERS
from .model import Sequential
from .optim import OPTIMIZERS
from .seq2seq import Seq2Seq

CHECKPOINT_FORMAT = "rnnx-checkpoint"
CHECKPOINT_KEY = _io.CHECKPOINT_KEY      # members of a checkpoint .npz besides "param/<name>":
OPTIMIZER_PREFIX = "optimizer/"          # "optimizer/<slot>/<parameter name>"
CARRIED_PREFIX = "carried/"              # "carried/<recurrent layer>/<part>"


def save(trainer, path):
    """Trainer.save_checkpoint(path): write trainer's checkpoint to path, atomically."""
    if isinstance(trainer.model, Seq2Seq):
        raise TypeError("save_checkpoint does not save a Seq2Seq's trainer yet; save the "
                        "model with rnnx.save(trainer.model, path)")
    loss_classes = {cls.__name__: cls for cls in LOSSES.values()}
    if type(trainer.loss).__name__ not in loss_classes or type(trainer.loss) is not \
            loss_classes[type(trainer.loss).__name__]:
        raise TypeError(f"save_checkpoint can save rnnx's losses only, got {trainer.loss!r}")
    optimizer = trainer.optimizer.state_dict()
    arrays = {_io.PARAM_PREFIX + name: np.ascontiguousarray(value)
              for name, value in trainer.model.state_dict().items()}
    for slot, values in optimizer.pop("state").items():
        for name, value in values.items():
            arrays[f"{OPTIMIZER_PREFIX}{slot}/{name}"] = value
    carried = None
    if trainer.state is not None:
        carried = []
        for index, layer_state in enumerate(trainer.state):
            parts = layer_state if isinstance(layer_state, tuple) else (layer_state,)
            carried.append(None if layer_state is None else
                           len(parts) if isinstance(layer_state, tuple) else -1)
            for j, part in enumerate(parts if layer_state is not None else ()):
                arrays[f"{CARRIED_PREFIX}{index}/{j}"] = np.ascontiguousarray(part)
    header = {
        "format": CHECKPOINT_FORMAT, "version": _io.VERSION,
        "architecture": _io._spec(trainer.model),
        "loss": {"type": type(trainer.loss).__name__,
                 "reduction": getattr(trainer.loss, "reduction", "mean")},
        "optimizer": optimizer,
        "scheduler": None if trainer.scheduler is None else trainer.scheduler.state_dict(),
        "trainer": {"bptt": trainer.bptt, "clip_norm": trainer.clip_norm,
                    "clip_value": trainer.clip_value, "reset_state": trainer.reset_state,
                    "progress": trainer.progress, "checkpoint": trainer.checkpoint,
                    "updates": trainer.updates, "epochs": trainer.epochs},
        "rng": trainer.rng.bit_generator.state,
        # the dropout draws of each layer that has them, so a resumed run draws the same
        "dropout_rngs": {str(index): layer.dropout_rng.bit_generator.state
                         for index, layer in enumerate(trainer.model.layers)
                         if getattr(layer, "dropout_rng", None) is not None},
        "carried": carried,
    }
    arrays[CHECKPOINT_KEY] = np.array(json.dumps(header, sort_keys=True))
    write_atomic(os.fspath(path), lambda f: np.savez(f, **arrays))

def load(cls, path):
    """Trainer.from_checkpoint(path): a cls (Trainer) restored from path, or ValueError
    naming the file and the part, with nothing left half-built."""
    path = _io.check_path(path)
    header, arrays = _io._read(path, CHECKPOINT_KEY,
                               (_io.PARAM_PREFIX, OPTIMIZER_PREFIX, CARRIED_PREFIX),
                               CHECKPOINT_FORMAT, "checkpoint")
    try:
        model = _io._build(header["architecture"])
        model.load_state_dict({name[len(_io.PARAM_PREFIX):]: value
                               for name, value in arrays.items()
                               if name.startswith(_io.PARAM_PREFIX)})
        if not isinstance(model, Sequential):
            model = Sequential(model)
        loss_classes = {c.__name__: c for c in LOSSES.values()}
        loss = loss_classes[header["loss"]["type"]](reduction=header["loss"]["reduction"])
        saved = dict(header["optimizer"])
        optimizer = OPTIMIZERS[saved["type"].lower()](model.parameters(),
                                                      **saved["hyperparameters"])
        saved["state"] = {slot: {} for slot in optimizer._slots}
        for name, value in arrays.items():
            if name.startswith(OPTIMIZER_PREFIX):
                slot, _, param = name[len(OPTIMIZER_PREFIX):].partition("/")
                if slot not in saved["state"]:
                    raise ValueError(f"optimizer slot {slot!r} is not one of "
                                     f"{optimizer._slots}")
                saved["state"][slot][param] = value
        optimizer.load_state_dict(saved)
        scheduler = None
        if header["scheduler"] is not None:
            options = header["scheduler"]
            scheduler = SCHEDULERS[options["type"]](optimizer, **options["options"])
            scheduler.load_state_dict(options)
        settings = dict(header["trainer"])
        counts = {key: settings.pop(key) for key in ("updates", "epochs")}
        if settings["bptt"] is not None:
            settings["bptt"] = tuple(settings["bptt"])
        trainer = cls(model, loss, optimizer, scheduler=scheduler, **settings)
        for key, value in counts.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key} must be an int >= 0, got {value!r}")
            setattr(trainer, key, value)
        trainer.rng.bit_generator.state = header["rng"]
        for index, state in header.get("dropout_rngs", {}).items():
            model.layers[int(index)].dropout_rng.bit_generator.state = state
        trainer.state = _carried_from(header["carried"], arrays)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError,
            RecursionError, MemoryError) as error:
        raise ValueError(f"{path!r} is not a valid rnnx checkpoint: "
                         f"{type(error).__name__}: {error}") from error
    return trainer


def _carried_from(structure, arrays):
    """The carried state from its saved structure (None, or per recurrent layer None, -1
    for one array, or n for a tuple of n arrays) and the CARRIED_PREFIX arrays."""
    if structure is None:
        return None
    state = []
    for index, kind in enumerate(structure):
        if kind is None:
            state.append(None)
            continue
        parts = tuple(arrays[f"{CARRIED_PREFIX}{index}/{j}"] for j in range(max(kind, 1)))
        state.append(parts[0] if kind == -1 else parts)
    return tuple(state)
