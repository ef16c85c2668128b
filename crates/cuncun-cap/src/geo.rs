//! CAP geometry: polygons ("lat,lon lat,lon ...", closed, >= 4 pairs) and circles
//! ("lat,lon radius_km"), with point-in-area tests for picking terminals and regions.

use serde::{Deserialize, Serialize};

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Geometry {
    /// Vertices as (lon, lat), first == last.
    Polygon(Vec<(f64, f64)>),
    Circle { lon: f64, lat: f64, radius_km: f64 },
}

fn coord(s: &str) -> Result<(f64, f64), String> {
    let (a, b) = s.split_once(',').ok_or_else(|| format!("{s:?} is not a \"lat,lon\" pair"))?;
    let lat: f64 = a.trim().parse().map_err(|_| format!("latitude {a:?} in {s:?} is not a number"))?;
    let lon: f64 = b.trim().parse().map_err(|_| format!("longitude {b:?} in {s:?} is not a number"))?;
    if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
        return Err(format!("latitude {lat} in {s:?} is outside [-90, 90]"));
    }
    if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} in {s:?} is outside [-180, 180]"));
    }
    Ok((lon, lat))
}

/// Parses a CAP polygon; every rule broken is reported (one message each).
pub fn parse_polygon(s: &str) -> Result<Geometry, Vec<String>> {
    let mut errs = Vec::new();
    let mut pts = Vec::new();
    let pairs: Vec<&str> = s.split_whitespace().collect();
    for p in &pairs {
        match coord(p) {
            Ok(c) => pts.push(c),
            Err(e) => errs.push(e),
        }
    }
    if pairs.len() < 4 {
        errs.push(format!("polygon has {} coordinate pairs; at least 4 are required (first == last)", pairs.len()));
    } else if errs.is_empty() && pts.first() != pts.last() {
        errs.push(format!(
            "polygon is not closed: first pair {:?} differs from last pair {:?}",
            pairs.first().copied().unwrap_or(""),
            pairs.last().copied().unwrap_or("")
        ));
    }
    if errs.is_empty() { Ok(Geometry::Polygon(pts)) } else { Err(errs) }
}

/// Parses a CAP circle "lat,lon radius" (radius in km, >= 0).
pub fn parse_circle(s: &str) -> Result<Geometry, Vec<String>> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [centre, radius] = parts.as_slice() else {
        return Err(vec![format!("circle {s:?} must be \"lat,lon radius_km\"")]);
    };
    let mut errs = Vec::new();
    let c = coord(centre).map_err(|e| errs.push(e)).ok();
    let r = match radius.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Some(r),
        _ => {
            errs.push(format!("circle radius {radius:?} must be a number of km >= 0"));
            None
        }
    };
    match (c, r) {
        (Some((lon, lat)), Some(radius_km)) if errs.is_empty() => Ok(Geometry::Circle { lon, lat, radius_km }),
        _ => Err(errs),
    }
}

/// Great-circle distance in km.
pub fn haversine_km(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

impl Geometry {
    /// Whether (lon, lat) lies inside: even-odd rule in the lon/lat plane for polygons (points on
    /// an edge count as inside), haversine distance for circles.
    pub fn contains(&self, lon: f64, lat: f64) -> bool {
        match self {
            Geometry::Circle { lon: clon, lat: clat, radius_km } => {
                haversine_km(*clon, *clat, lon, lat) <= *radius_km + 1e-9
            }
            Geometry::Polygon(pts) => {
                let mut inside = false;
                let n = pts.len();
                if n < 3 {
                    return false;
                }
                let mut j = n - 1;
                for i in 0..n {
                    let (xi, yi) = pts[i];
                    let (xj, yj) = pts[j];
                    if on_segment(lon, lat, xi, yi, xj, yj) {
                        return true;
                    }
                    if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
                        inside = !inside;
                    }
                    j = i;
                }
                inside
            }
        }
    }
}

fn on_segment(px: f64, py: f64, x1: f64, y1: f64, x2: f64, y2: f64) -> bool {
    let cross = (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1);
    cross.abs() < 1e-12
        && px >= x1.min(x2) - 1e-12
        && px <= x1.max(x2) + 1e-12
        && py >= y1.min(y2) - 1e-12
        && py <= y2.max(y1) + 1e-12
}

/// The ids of the points (id, lon, lat) inside any of `areas`, in input order.
pub fn select_inside<I: Clone>(areas: &[Geometry], points: &[(I, f64, f64)]) -> Vec<I> {
    points
        .iter()
        .filter(|(_, lon, lat)| areas.iter().any(|g| g.contains(*lon, *lat)))
        .map(|(id, _, _)| id.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn polygon_rules_and_containment() {
        let g = parse_polygon("31.0,109.0 31.0,110.0 30.0,110.0 30.0,109.0 31.0,109.0").unwrap();
        assert!(g.contains(109.5, 30.5));
        assert!(!g.contains(110.5, 30.5));
        assert!(g.contains(109.0, 30.5), "edge counts as inside");
        let e = parse_polygon("31,109 31,110 30,110 30,109").unwrap_err();
        assert!(e[0].contains("not closed"), "{e:?}");
        let e = parse_polygon("31,109 31,110 31,109").unwrap_err();
        assert!(e[0].contains("3 coordinate pairs"), "{e:?}");
        let e = parse_polygon("95,109 31,110 30,110 95,109").unwrap_err();
        assert!(e.iter().any(|m| m.contains("latitude 95")), "{e:?}");
    }

    #[test]
    fn circles_use_great_circle_distance() {
        let c = parse_circle("30.0,109.0 10").unwrap();
        // 0.08 degrees of latitude is about 8.9 km; 0.1 is about 11.1 km.
        assert!(c.contains(109.0, 30.08));
        assert!(!c.contains(109.0, 30.1));
        assert!(parse_circle("30,109").is_err());
        assert!(parse_circle("30,109 -1").is_err());
        let d = haversine_km(116.4074, 39.9042, 121.4737, 31.2304);
        assert!((d - 1067.0).abs() < 5.0, "Beijing-Shanghai {d}");
        let ids = select_inside(&[c], &[(1, 109.0, 30.0), (2, 112.0, 30.0)]);
        assert_eq!(ids, vec![1]);
    }
}
