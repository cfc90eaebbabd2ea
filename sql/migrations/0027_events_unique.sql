-- events_unique: the view analysts are told to read events through. One row
-- per message, whatever the number of deliveries still waiting to be merged,
-- with every column of events, context included.
CREATE VIEW IF NOT EXISTS events_unique AS
SELECT * FROM events FINAL
