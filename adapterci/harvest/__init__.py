"""Close the loop: failed production requests -> a reviewed labeling queue -> training rows and eval items
(docs/harvest.md). `harvest` selects, redacts, clusters and writes the queue; `ingest` reads the review back,
splits it and appends it to the project's data."""
