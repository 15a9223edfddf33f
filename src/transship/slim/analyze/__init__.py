"""`transship analyze`: why an image is big, and what a shared offload layer would save.

The core is pure: it reads images through the Source interface, streams every layer once
and returns an `AnalysisReport`; renderers turn that into tables, JSON or HTML.
"""

from transship.slim.analyze.analyzer import AnalyzeOptions, LayerScanned, analyze_images
from transship.slim.analyze.image_reader import ImageInput
from transship.slim.analyze.model import AnalysisReport

__all__ = ["AnalysisReport", "AnalyzeOptions", "ImageInput", "LayerScanned", "analyze_images"]
