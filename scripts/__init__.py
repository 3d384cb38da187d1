"""Developer tools, kept out of the runtime package (they need the dev extras, e.g.
reportlab): ``python -m scripts.render`` (sample submissions), ``python -m scripts.bench``
(the benchmark), ``python -m scripts.simulate`` (the review-loop simulation). Run them
from the project root."""
