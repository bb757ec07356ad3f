"""Using a trained model: ``load_model()`` (the shipped model) or ``load_model(checkpoint)`` -> :class:`FERPredictor`.

.. code-block:: python

    from fer_attention import load_model

    model = load_model()  # or load_model("logs/train/runs/.../checkpoints/epoch_012.ckpt")
    for face in model.predict("photo.jpg"):  # one result per face found
        print(face.box, face.label, face.probabilities)

``detect="auto"`` takes an image no larger than twice the model's input size as a face crop and looks for faces
in a larger one; each result says whether a detector found its face. Videos: ``model.predict_video("clip.mp4")``.
An exported ``.onnx`` file (fp32 or int8) loads with the same ``load_model``. Faces are prepared exactly as
for training (:mod:`fer_attention.data.preprocess`), resized to ``data_config.image_size``, scaled to [0, 1].
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fer_attention.data import preprocess
from fer_attention.data.preprocess import Box, ImageLike
from fer_attention.errors import CheckpointError, ConfigError
from fer_attention.inference.onnx_io import ONNX_HINT, OnnxRuntimeNet, ort_session, read_onnx_metadata
from fer_attention.inference.prediction import FacePrediction, image_predictions
from fer_attention.inference.shipped import SHIPPED_DIR, describe, shipped_card
from fer_attention.inference.video import predict_video
from fer_attention.models.tta import check_tta, ten_crop_logits
from fer_attention.training.checkpoint import read_checkpoint

log = logging.getLogger(__name__)

__all__ = ["FERPredictor", "load_model", "load_onnx"]


class FERPredictor:
    """A trained network with the preprocessing of its training data. Build it with :func:`load_model`.

    Args:
        net: the network; called as ``net(x)`` -> logits and ``net(x, return_mask=True)`` ->
            ``(logits, mask or None)`` on faces ``[N, 1, S, S]`` in [0, 1]. Moved to ``device`` and set to
            eval mode.
        class_names: the class of each logit, in order.
        image_size: the side ``S`` of the network's square input.
        data_config: the checkpoint's ``data_config`` (how its training faces were prepared).
        device: where the network runs (``"cpu"``, ``"cuda"``, ...).
        checkpoint: the file it was loaded from, shown in ``repr``.
        test_time_augmentation: ``None``, or ``"tencrop"``: each face's probabilities are the softmax of
            the mean logits over ten 90% crops and their mirrors (10x the compute; the attention mask is
            the plain face's).
        min_face: the smallest face the detector looks for, a fraction of the image's shorter side
            (:func:`~fer_attention.data.preprocess.detect_faces`; `fer-predict`'s ``min_face``).

    The arguments are kept as attributes of the same names (``device`` as a ``torch.device``); a model
    from :func:`load_onnx` also has ``onnx_metadata``.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        class_names: Sequence[str],
        image_size: int,
        data_config: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        checkpoint: str | None = None,
        test_time_augmentation: str | None = None,
        min_face: float = preprocess.MIN_FACE,
    ) -> None:
        self.test_time_augmentation = check_tta(test_time_augmentation)
        self.min_face = preprocess.check_min_face(min_face)
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.data_config = dict(data_config or {})
        self.checkpoint = checkpoint
        # what answered, in one line (the shipped model's description, else the file)
        self.model_name = str(checkpoint) if checkpoint else "an in-memory network"

    def __repr__(self) -> str:
        return (
            f"FERPredictor({self.checkpoint!r}, classes={self.class_names}, image_size={self.image_size}, "
            f"device={self.device})"
        )

    # -- preprocessing -------------------------------------------------------------------------------

    def is_face_crop(self, shape: tuple[int, ...]) -> bool:
        """``detect="auto"``: is an image of this shape taken as a face crop?

        Args:
            shape: the image's shape, ``(H, W, ...)``.

        Returns:
            True when the longer side is at most ``AUTO_CROP_FACTOR`` (2) times ``image_size``
            (:func:`fer_attention.data.preprocess.is_face_crop`).
        """
        return preprocess.is_face_crop(shape, self.image_size)

    def faces(
        self, image: ImageLike, detect: bool | str = "auto"
    ) -> tuple[list[np.ndarray], list[Box | None]]:
        """The network inputs of one image and their boxes, prepared as the training faces were.

        Args:
            image: anything :func:`~fer_attention.data.preprocess.to_gray` reads (a path, a PIL image,
                an array).
            detect: ``"auto"``, True or False (or their strings, see
                :func:`~fer_attention.data.preprocess.parse_detect`). True: every face the detector finds;
                False: the centred square of the whole image; ``"auto"``: False when the image is no larger
                than about twice the input size (:meth:`is_face_crop`), else True.

        Returns:
            ``(faces, boxes)``: uint8 faces ``[S, S]`` and their ``(x, y, w, h)`` boxes, or ``[None]`` for
            the whole image taken as a crop; two empty lists when the detector finds no face.

        Raises:
            ValueError: the image cannot be read, or ``detect`` is not one of the values above.
        """
        detect = preprocess.parse_detect(detect)  # before the file is read
        return self.faces_of_gray(preprocess.to_gray(image), detect)

    def faces_of_gray(
        self, gray: np.ndarray, detect: bool | str = "auto"
    ) -> tuple[list[np.ndarray], list[Box | None]]:
        """:meth:`faces` of a uint8 gray image ``[H, W]``, faces down to ``min_face``.

        Args:
            gray: a uint8 gray image ``[H, W]``.
            detect: ``"auto"``, True or False, already parsed (anything but False and ``"auto"`` detects).

        Returns:
            ``(faces, boxes)`` as :meth:`faces` returns them.
        """
        return preprocess.face_inputs(gray, self.image_size, detect, self.min_face)

    # -- inference -----------------------------------------------------------------------------------

    def predict_faces(
        self, faces: np.ndarray | Sequence[np.ndarray], return_attention: bool = False, batch_size: int = 64
    ) -> dict[str, np.ndarray | None]:
        """Run the network on prepared faces (e.g. from :meth:`faces`), without detection or resizing.

        Args:
            faces: uint8 faces ``[N, S, S]`` (an array or a sequence of ``[S, S]`` arrays), ``S`` =
                ``image_size``.
            return_attention: also return the attention masks and LBP maps.
            batch_size: faces per forward pass.

        Returns:
            A dict: ``"probs"``, float32 softmax probabilities ``[N, C]`` in ``class_names`` order;
            ``"mask"`` and ``"lbp"``, ``[N, S, S]`` in [0, 1] with ``return_attention``, else None (also
            None when the network has no attention / LBP, as an ONNX model).

        Raises:
            ValueError: ``faces`` is not ``[N, S, S]``.
        """
        faces = np.asarray(faces, dtype=np.uint8)
        if faces.ndim != 3 or faces.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(
                f"faces must be [N, {self.image_size}, {self.image_size}]; got shape {tuple(faces.shape)}"
            )
        probs, masks, lbps = [], [], []
        lbp_layer = getattr(self.net, "lbp", None)
        with torch.inference_mode():
            for start in range(0, len(faces), max(1, int(batch_size))):
                x = torch.from_numpy(faces[start : start + batch_size]).to(self.device)
                x = x.unsqueeze(1).float().div_(255.0)
                if return_attention:
                    logits, mask = self.net(x, return_mask=True)
                    if mask is not None:
                        masks.append(mask[:, 0].float().cpu().numpy())
                    if lbp_layer is not None:
                        lbps.append(lbp_layer(x)[:, 0].float().cpu().numpy())
                else:
                    logits = None
                if self.test_time_augmentation == "tencrop":
                    logits = ten_crop_logits(self.net, x)
                elif logits is None:
                    logits = self.net(x)
                probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        n = len(self.class_names)
        return {
            "probs": np.concatenate(probs) if probs else np.zeros((0, n), np.float32),
            "mask": np.concatenate(masks) if masks else None,
            "lbp": np.concatenate(lbps) if lbps else None,
        }

    def predict(
        self,
        images: ImageLike | Sequence[ImageLike],
        detect: bool | str = "auto",
        return_attention: bool = False,
        batch_size: int = 64,
    ) -> list[FacePrediction] | list[list[FacePrediction]]:
        """Predict the expression of every face.

        All faces of all images run through the network together, in batches of ``batch_size``.

        Args:
            images: a numpy array (gray ``[H, W]`` or RGB ``[H, W, 3]``, uint8 or float in [0, 1]), a PIL
                image, a file path, or a list or tuple of them.
            detect: True: faces are found with OpenCV's Haar cascade (an image without a face gives an
                empty list); False: each image is taken as a face crop; ``"auto"`` (the default): images no
                larger than about twice the input size are face crops, faces are looked for in larger ones.
            return_attention: also fill each result's ``face``, ``mask`` and ``lbp``.
            batch_size: faces per forward pass.

        Returns:
            For one image, a list of :class:`~fer_attention.inference.prediction.FacePrediction` (one per face, left
            to right; ``file`` set for a path); for a list or tuple, one such list per image, in order.

        Raises:
            ValueError: an image cannot be read (the message names it), or ``detect`` is invalid.
        """
        detect = preprocess.parse_detect(detect)
        single = not isinstance(images, list | tuple)
        items = [images] if single else list(images)
        prepared = []
        for i, item in enumerate(items):
            try:
                prepared.append(self.faces_of_gray(preprocess.to_gray(item), detect))
            except ValueError as err:
                name = str(item) if isinstance(item, str | Path) else f"image {i}"
                raise ValueError(f"{name}: {err}") from None
        files = [str(item) if isinstance(item, str | Path) else None for item in items]
        results = self.predict_prepared(prepared, return_attention, batch_size, files)
        return results[0] if single else results

    def predict_prepared(
        self,
        prepared: Sequence[tuple[Sequence[np.ndarray], Sequence[Box | None]]],
        return_attention: bool = False,
        batch_size: int = 64,
        files: Sequence[str | None] | None = None,
    ) -> list[list[FacePrediction]]:
        """:meth:`predict` of images already prepared by :meth:`faces`, all faces in the same batches.

        Args:
            prepared: one ``(faces, boxes)`` per image, as :meth:`faces` returns them.
            return_attention: also fill each result's ``face``, ``mask`` and ``lbp``.
            batch_size: faces per forward pass.
            files: each image's file, kept as its results' ``file`` (default None).

        Returns:
            One list of :class:`FacePrediction` per image (empty for an image without faces), in order.
        """
        crops = [face for faces, _ in prepared for face in faces]
        if not crops:
            return [[] for _ in prepared]
        out = self.predict_faces(np.stack(crops), return_attention=return_attention, batch_size=batch_size)
        return image_predictions(out, self.class_names, prepared, files, keep_faces=return_attention)

    def predict_video(
        self,
        path: str | Path,
        stride: int = 1,
        detect: bool | str = "auto",
        batch_size: int = 64,
        annotated: str | Path | None = None,
        timeline: str | Path | None = None,
        progress: Any = None,
        **tracking: Any,
    ) -> list[dict[str, Any]]:
        """Label every ``stride``-th frame of a video, following faces across frames by box overlap.

        A bad video does not raise: a video that cannot be opened, or has no face, gives one row with
        ``error`` set; one that stops decoding early keeps the rows of the frames that decoded and ends
        with an error row naming the frame. See :func:`fer_attention.inference.video.predict_video`.

        Args:
            path, stride, detect, batch_size, annotated, progress: as in
                :func:`~fer_attention.inference.video.predict_video` (``detect`` is decided once per video from its
                frame size; ``annotated`` is a copy with boxes, tracks and labels drawn).
            timeline: also write a PNG of each track's probabilities over time there.
            **tracking: ``iou`` (default 0.3) and ``max_missed`` (default 5) of
                :class:`fer_attention.inference.video.IoUTracker`, or ``decimals`` (default 6) of the probabilities.

        Returns:
            One dict per face per labelled frame, as `fer-predict` writes them
            (:meth:`FacePrediction.to_row <fer_attention.inference.prediction.FacePrediction.to_row>` with ``video``).

        Raises:
            ValueError: ``detect`` is invalid.
        """
        # function-local: matplotlib only when a timeline is asked for
        from fer_attention.viz.timeline import plot_timeline

        rows = list(predict_video(self, path, stride, detect, batch_size, annotated, progress, **tracking))
        if timeline is not None:
            plot_timeline(rows, self.class_names, timeline, title=Path(path).name)
        return rows


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> FERPredictor:
    """Load a fer-attention checkpoint (weights only, never arbitrary pickles) or a model exported by
    `fer-export format=onnx` (``.onnx``, fp32 or int8, run by ONNX Runtime) for inference; with no path,
    the model that ships with the package (:mod:`fer_attention.inference.shipped`).

    Args:
        path: a `fer-train` checkpoint (``checkpoints/epoch_NNN.ckpt``), or an ``.onnx`` file (then
            :func:`load_onnx` loads it); None: the shipped model's fp16 weights.
        device: where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).

    Returns:
        A :class:`FERPredictor` with the checkpoint's class names, image size and ``data_config``.

    Raises:
        CheckpointError: one line for a missing, unreadable or foreign file (a fer-pretrain pretext
            checkpoint included), a checkpoint without an image size, or weights that do not fit the
            network the checkpoint's config describes; with no path, a shipped model missing from the
            install (saying how to rebuild it).
        ConfigError: an ``.onnx`` file when onnxruntime is not installed.
    """
    if path is None:
        card = shipped_card()
        predictor = load_model(SHIPPED_DIR / card["files"]["fp16"], device)
        predictor.model_name = describe(card)
        return predictor
    if Path(path).suffix.lower() == ".onnx":
        predictor = load_onnx(path, device=device)
        log.info("loaded %r", predictor)
        return predictor

    ckpt = read_checkpoint(path)
    hparams = ckpt["hyper_parameters"]
    data_config = dict(hparams.get("data_config") or {})
    image_size = data_config.get("image_size")
    if not image_size:
        raise CheckpointError(f"checkpoint {path}: records no image size (data_config.image_size)")
    try:  # the network alone, eager, without Lightning: the "net." tensors (fp16 ones are cast)
        from hydra.utils import instantiate

        net = instantiate(hparams["net"])
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        net.load_state_dict(state, strict=True)
    except Exception as err:  # noqa: BLE001 - a state dict that does not fit its own config
        raise CheckpointError(
            f"checkpoint {path}: cannot build the network ({str(err).splitlines()[0][:200]})"
        ) from None
    predictor = FERPredictor(
        net, hparams["class_names"], int(image_size), data_config, device=device, checkpoint=str(path)
    )
    log.info("loaded %r", predictor)
    return predictor


def load_onnx(path: str | Path, device: str | torch.device = "cpu", threads: int | None = None):
    """An exported ``.onnx`` model (fp32 or int8) as a :class:`FERPredictor` with the class names and
    image size from its metadata, run by ONNX Runtime.

    Args:
        path: a file written by `fer-export format=onnx`.
        device: ``"cuda..."`` uses ONNX Runtime's CUDA provider when it is available, else the CPU; the
            predictor's own ``device`` is always the CPU.
        threads: ONNX Runtime's intra-op threads (default: ``torch.get_num_threads()``).

    Returns:
        A :class:`FERPredictor` whose ``onnx_metadata`` holds the model's metadata; it returns no
        attention masks or LBP maps.

    Raises:
        CheckpointError: one line for a missing or unreadable file, or one without fer-attention metadata
            or the input ``faces`` and output ``logits``.
        ConfigError: onnxruntime is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model {path}: no such file")
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(f"model {path}: an .onnx model needs the onnxruntime package: {ONNX_HINT}")
    try:
        session = ort_session(path, threads, str(device))
    except Exception as err:  # noqa: BLE001 - anything ONNX Runtime cannot parse
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"model {path}: not a readable ONNX model ({reason[:200]})") from None
    meta = read_onnx_metadata(dict(session.get_modelmeta().custom_metadata_map), path)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != ["faces"] or "logits" not in outputs:
        raise CheckpointError(
            f"model {path}: expected input 'faces' and output 'logits', got {inputs}, {outputs}"
        )
    predictor = FERPredictor(
        OnnxRuntimeNet(session),
        meta["class_names"],
        meta["image_size"],
        meta["data_config"],
        device="cpu",
        checkpoint=str(path),
    )
    predictor.onnx_metadata = meta
    return predictor
