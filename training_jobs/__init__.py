"""Everything that runs as a Ray job: dataset import (training and batch inference come next)."""
