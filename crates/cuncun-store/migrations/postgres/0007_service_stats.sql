-- Running counts behind the service indicators and household coverage, per region at every level. The triggers that keep
-- them and the backfill are generated from one definition of each measure
-- (crates/cuncun-store/src/service_stats.rs) and applied with this migration.
CREATE TABLE stat_digits (digits BIGINT PRIMARY KEY);
INSERT INTO stat_digits (digits) VALUES (2), (4), (6), (9), (12);

-- Tickets by the Beijing day they were requested (cancelled ones left out).
CREATE TABLE ticket_day_stats (
    digits       BIGINT NOT NULL,
    region_code  TEXT NOT NULL,
    day          BIGINT NOT NULL,
    tickets      BIGINT NOT NULL DEFAULT 0,
    closed       BIGINT NOT NULL DEFAULT 0,
    closed_24h   BIGINT NOT NULL DEFAULT 0,
    close_ms_sum BIGINT NOT NULL DEFAULT 0,
    complaints   BIGINT NOT NULL DEFAULT 0,
    rated        BIGINT NOT NULL DEFAULT 0,
    satisfied    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (digits, region_code, day)
);

CREATE TABLE household_stats (
    digits              BIGINT NOT NULL,
    region_code         TEXT NOT NULL,
    households          BIGINT NOT NULL DEFAULT 0,
    complete_households BIGINT NOT NULL DEFAULT 0,
    care_households     BIGINT NOT NULL DEFAULT 0,
    -- Coverage (docs/INDICATORS.md): people, households per reception mode, receiving, fibre, HD.
    population          BIGINT NOT NULL DEFAULT 0,
    mode_cable          BIGINT NOT NULL DEFAULT 0,
    mode_terrestrial    BIGINT NOT NULL DEFAULT 0,
    mode_satellite      BIGINT NOT NULL DEFAULT 0,
    mode_iptv           BIGINT NOT NULL DEFAULT 0,
    mode_5g             BIGINT NOT NULL DEFAULT 0,
    receiving           BIGINT NOT NULL DEFAULT 0,
    receiving_population BIGINT NOT NULL DEFAULT 0,
    fibre               BIGINT NOT NULL DEFAULT 0,
    cable_fibre         BIGINT NOT NULL DEFAULT 0,
    hd                  BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (digits, region_code)
);

-- Special-care visits counted (at most two per household and year).
CREATE TABLE visit_stats (
    digits      BIGINT NOT NULL,
    region_code TEXT NOT NULL,
    year        BIGINT NOT NULL,
    visits_done BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (digits, region_code, year)
);
