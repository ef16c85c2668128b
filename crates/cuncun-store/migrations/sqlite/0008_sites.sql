-- Transmitter sites: TV, FM, DTMB and medium-wave transmitting stations and relay (差转) stations,
-- counted with the front-ends in the coverage of their village (docs/INDICATORS.md). A site is
-- taken out of service rather than deleted, so the registry keeps its history.
CREATE TABLE transmitter_site (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,              -- tv | fm | dtmb | mw | relay
    village_code  TEXT NOT NULL REFERENCES region(code),
    hamlet_id     INTEGER REFERENCES hamlet(id),
    lon           REAL,
    lat           REAL,
    frequencies   TEXT NOT NULL,              -- channels / frequencies as written on the licence
    power_w       REAL,                       -- transmitter power in watts
    in_service    INTEGER NOT NULL DEFAULT 1,
    updated_at_ms INTEGER NOT NULL,
    updated_by    TEXT NOT NULL,
    UNIQUE (village_code, name)
);
