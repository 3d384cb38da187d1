"""forcecov: measure, with evidence, how well police forces' responses cover recommendations."""

__version__ = "0.1.0"

# Bumped when extraction or segmentation changes what they produce, so caches are invalidated.
PIPELINE_VERSION = "1"
