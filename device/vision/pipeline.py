"""The one pipeline every caller uses (CLI, API, camera loop): image -> Face records.

Stages are created lazily, so a caller that only detects never loads the embedder.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..config import Config
from ..errors import FaceError
from .align import Aligner
from .calibration import Calibration
from .detector import make_detector
from .embedder import SFaceEmbedder
from .face import Face
from .manifest import Manifest
from .mesh import FaceMesh
from . import quality as quality_codes


@dataclass
class Comparison:
    cosine: float
    score: float
    same: bool
    threshold: float


class Pipeline:
    """Stages are shared by every thread: each model runs one call at a time under its own lock, and the
    optional stages are created once, under the pipeline's lock."""

    def __init__(self, config: Config | None = None, manifest: Manifest | None = None):
        self.config = config or Config()
        self.manifest = manifest or Manifest(self.config.vision.models_dir or None)
        threads = self.config.vision.threads
        settings = self.config.embedder
        self.embedder = SFaceEmbedder(self.manifest, settings.precision, threads, flip=settings.flip,
                                      eyes=settings.eyes)
        self.mesh = FaceMesh(self.manifest, threads)
        self.aligner = Aligner(settings.eyes, self.mesh)
        # The detector shares the embedder and the aligner: its human check's crop and embedding are the face's.
        self.detector = make_detector(self.manifest, self.config.detector, threads, embedder=self.embedder,
                                      aligner=self.aligner)
        self._attributes = None
        self._liveness = None
        self._calibration: Calibration | None = None
        self._lock = threading.RLock()

    def prepare(self, liveness: bool = False, attributes: bool = False) -> "Pipeline":
        """Load the models now (the daemon does, so that the first request does not pay for it)."""
        with self._lock:
            self.detector.prepare()
            self.embedder.prepare()
            self.mesh.prepare()
            if liveness:
                self.liveness.prepare()
            if attributes:
                self.attributes.prepare()
        return self

    @property
    def attributes(self):
        with self._lock:
            if self._attributes is None:
                from .attributes import AgeGender

                self._attributes = AgeGender(self.manifest, self.config.attributes.age_precision,
                                             self.config.attributes.gender_precision,
                                             self.config.vision.threads).prepare()
            return self._attributes

    @property
    def calibration(self) -> Calibration:
        with self._lock:
            if self._calibration is None:
                self._calibration = Calibration.from_manifest(self.manifest.calibration("sface"))
            return self._calibration

    def detect(self, image: np.ndarray, known: list | None = None) -> list[Face]:
        """Faces, largest first; `known`: boxes of faces checked in the frame before (see the detector)."""
        return self.detector.detect(image, known)

    def embed(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Align and embed each face in place (a face the detector's human check embedded keeps that
        embedding: same crop, same model); returns the same list."""
        for face in self.align(image, faces):
            if face.embedding is None:
                face.embedding = self.embedder.embed(face.aligned)
        return faces

    def align(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        for face in faces:
            if face.aligned is None:
                face.aligned = self.aligner.align(image, face)
        return faces

    def add_mesh(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Run the face mesh (eye openness, head pose) on faces that do not have it yet."""
        for face in faces:
            self.mesh.of(image, face)
        return faces

    def assess(self, image: np.ndarray, faces: list[Face], mesh: bool = True) -> list[Face]:
        """Quality codes and score of each face; with `mesh`, also the mesh-based codes (pose, eyes)."""
        self.align(image, faces)
        if mesh:
            self.add_mesh(image, faces)
        for face in faces:
            face.quality = quality_codes.assess(face, image.shape, self.config.quality, mesh=face.mesh,
                                                aligned=face.aligned)
        return faces

    @property
    def liveness(self):
        with self._lock:
            if self._liveness is None:
                from .liveness import PassiveLiveness

                self._liveness = PassiveLiveness(self.manifest, self.config.liveness.v2_precision,
                                                 self.config.liveness.v1se_precision,
                                                 self.config.vision.threads).prepare()
            return self._liveness

    def add_liveness(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Passive liveness of each face: {"score", "live", "codes"}. A face that a quality gate stops is
        not scored (score None, live False) and its codes say which gate stopped it."""
        self.assess(image, [face for face in faces if face.quality is None])
        settings = self.config.liveness
        for face in faces:
            gates = quality_codes.liveness_gates(face, face.quality, settings)
            if gates:
                face.liveness = {"score": None, "live": False, "codes": gates}
                continue
            score = self.liveness.score(image, face.box)
            live = score >= settings.threshold
            face.liveness = {"score": round(score, 4), "live": live,
                             "codes": [] if live else [quality_codes.FACE_NOT_LIVE]}
        return faces

    def add_attributes(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Age and gender of each face."""
        for face in faces:
            result = self.attributes.predict(image, face.landmarks)
            face.age, face.gender = result["age"], result["gender"]
            face.gender_confidence = result["gender_confidence"]
        return faces

    def analyze(self, image: np.ndarray, embed: bool = True) -> list[Face]:
        faces = self.detect(image)
        return self.embed(image, faces) if embed else faces

    def main_face(self, image: np.ndarray) -> Face:
        """The largest face of an image, embedded (for 1:1 use); FACE_NOT_FOUND when there is none."""
        faces = self.detect(image)
        if not faces:
            raise FaceError("no face found in the image", "FACE_NOT_FOUND")
        return self.embed(image, faces[:1])[0]

    def compare_faces(self, a: Face, b: Face) -> Comparison:
        cosine = float(np.dot(a.embedding, b.embedding))
        score = self.calibration.score(cosine)
        threshold = self.config.recognition.match_score
        return Comparison(cosine=cosine, score=score, same=score >= threshold, threshold=threshold)

    def compare(self, image_a: np.ndarray, image_b: np.ndarray) -> Comparison:
        return self.compare_faces(self.main_face(image_a), self.main_face(image_b))
