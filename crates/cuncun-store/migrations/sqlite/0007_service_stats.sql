-- Running counts behind the service indicators and household coverage, per region at every level. The triggers that keep
-- them and the backfill are generated from one definition of each measure
-- (crates/cuncun-store/src/service_stats.rs) and applied with this migration.
CREATE TABLE stat_digits (digits INTEGER PRIMARY KEY);
INSERT INTO stat_digits (digits) VALUES (2), (4), (6), (9), (12);

-- Tickets by the Beijing day they were requested (cancelled ones left out).
CREATE TABLE ticket_day_stats (
    digits       INTEGER NOT NULL,
    region_code  TEXT NOT NULL,
    day          INTEGER NOT NULL,
    tickets      INTEGER NOT NULL DEFAULT 0,
    closed       INTEGER NOT NULL DEFAULT 0,
    closed_24h   INTEGER NOT NULL DEFAULT 0,
    close_ms_sum INTEGER NOT NULL DEFAULT 0,
    complaints   INTEGER NOT NULL DEFAULT 0,
    rated        INTEGER NOT NULL DEFAULT 0,
    satisfied    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (digits, region_code, day)
);

CREATE TABLE household_stats (
    digits              INTEGER NOT NULL,
    region_code         TEXT NOT NULL,
    households          INTEGER NOT NULL DEFAULT 0,
    complete_households INTEGER NOT NULL DEFAULT 0,
    care_households     INTEGER NOT NULL DEFAULT 0,
    -- Coverage (docs/INDICATORS.md): people, households per reception mode, receiving, fibre, HD.
    population          INTEGER NOT NULL DEFAULT 0,
    mode_cable          INTEGER NOT NULL DEFAULT 0,
    mode_terrestrial    INTEGER NOT NULL DEFAULT 0,
    mode_satellite      INTEGER NOT NULL DEFAULT 0,
    mode_iptv           INTEGER NOT NULL DEFAULT 0,
    mode_5g             INTEGER NOT NULL DEFAULT 0,
    receiving           INTEGER NOT NULL DEFAULT 0,
    receiving_population INTEGER NOT NULL DEFAULT 0,
    fibre               INTEGER NOT NULL DEFAULT 0,
    cable_fibre         INTEGER NOT NULL DEFAULT 0,
    hd                  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (digits, region_code)
);

-- Special-care visits counted (at most two per household and year).
CREATE TABLE visit_stats (
    digits      INTEGER NOT NULL,
    region_code TEXT NOT NULL,
    year        INTEGER NOT NULL,
    visits_done INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (digits, region_code, year)
);

-- A bulk insert under way into this source: its row triggers wait and the load adds its rows'
-- counts in one statement at the end (service_stats.rs, bulk_begin / bulk_end).
CREATE TABLE stat_bulk (source TEXT PRIMARY KEY);
