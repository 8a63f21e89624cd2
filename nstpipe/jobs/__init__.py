"""What to paint and how one worker paints it: plans, identities, workers, the video job, failure records."""
