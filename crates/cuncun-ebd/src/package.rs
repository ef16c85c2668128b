//! `EBDT_<EBDID>.tar`: `EBDB_<EBDID>.xml` (the EBD), `EBDS_EBDB_<EBDID>.xml` (its signature)
//! and media files. Packing is deterministic (fixed order, mode 0644, mtime 0); unpacking is
//! bounded (entry count and sizes) and accepts plain file names only.

use crate::model::Ebd;
use crate::sign::{EbdsSignature, KeyError, Signer};
use crate::values::{EbdTime, Ebdid};
use std::io::Read;

/// Bounds on what unpacking accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole tar.
    pub max_tar_bytes: u64,
    /// Files in the tar.
    pub max_entries: usize,
    /// The EBDB and EBDS files each.
    pub max_xml_bytes: u64,
    /// All media files together.
    pub max_media_bytes: u64,
}

impl Default for Limits {
    /// 200 MiB of media (a long recording at broadcast quality), 8 MiB per XML file, 64 files.
    fn default() -> Self {
        Limits { max_tar_bytes: 256 << 20, max_entries: 64, max_xml_bytes: 8 << 20, max_media_bytes: 200 << 20 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    #[error("not a readable tar file: {0}")]
    Tar(String),
    #[error("tar entry {name:?}: {what}")]
    Entry { name: String, what: String },
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("no EBDB_<EBDID>.xml file in the package")]
    NoEbdb,
    #[error("more than one EBDB file: {0} and {1}")]
    TwoEbdb(String, String),
    #[error("signature file {0} belongs to no EBDB file in the package")]
    StraySignature(String),
    #[error("{0}")]
    Sign(String),
}

impl PackageError {
    /// ResultCode: 3 when the EBDB is missing, else 2.
    pub fn result_code(&self) -> u8 {
        match self {
            PackageError::NoEbdb => 3,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// The files of one package, as bytes (the EBDB bytes are what the signature covers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub ebdid: Ebdid,
    pub ebdb: Vec<u8>,
    pub ebds: Option<Vec<u8>>,
    pub media: Vec<MediaFile>,
}

pub fn tar_name(ebdid: &Ebdid) -> String {
    format!("EBDT_{ebdid}.tar")
}
pub fn ebdb_name(ebdid: &Ebdid) -> String {
    format!("EBDB_{ebdid}.xml")
}
pub fn ebds_name(ebdid: &Ebdid) -> String {
    format!("EBDS_EBDB_{ebdid}.xml")
}

/// Whether a media file name is acceptable: one plain component, no control characters,
/// at most 255 bytes, not hidden.
pub fn valid_media_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("file names must be 1-255 bytes".into());
    }
    if name.contains(['/', '\\']) || name.starts_with('.') {
        return Err("only plain file names are accepted (no directories, no '..', not hidden)".into());
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("control characters in the file name".into());
    }
    Ok(())
}

impl Package {
    /// Writes `ebd`, signs its exact bytes with `signer` (if any), and adds the media.
    pub fn build(ebd: &Ebd, signer: Option<&dyn Signer>, media: Vec<MediaFile>, time: EbdTime) -> Result<Package, KeyError> {
        let ebdid = ebd.header.ebdid.clone();
        let ebdb = ebd.to_xml().into_bytes();
        let ebds = match signer {
            Some(s) => Some(EbdsSignature::create(&ebdid, &ebdb, s, time)?.to_xml().into_bytes()),
            None => None,
        };
        Ok(Package { ebdid, ebdb, ebds, media })
    }

    pub fn tar_name(&self) -> String {
        tar_name(&self.ebdid)
    }

    /// The tar bytes: EBDB, EBDS, then the media in the given order.
    pub fn to_tar(&self) -> Result<Vec<u8>, PackageError> {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        let mut add = |name: &str, data: &[u8]| -> Result<(), PackageError> {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, data)
                .map_err(|e| PackageError::Entry { name: name.to_string(), what: e.to_string() })
        };
        add(&ebdb_name(&self.ebdid), &self.ebdb)?;
        if let Some(s) = &self.ebds {
            add(&ebds_name(&self.ebdid), s)?;
        }
        for m in &self.media {
            valid_media_name(&m.name).map_err(|what| PackageError::Entry { name: m.name.clone(), what })?;
            add(&m.name, &m.data)?;
        }
        b.into_inner().map_err(|e| PackageError::Tar(e.to_string()))
    }

    /// Reads a tar, within `limits`.
    pub fn from_tar(bytes: &[u8], limits: &Limits) -> Result<Package, PackageError> {
        if bytes.len() as u64 > limits.max_tar_bytes {
            return Err(PackageError::TooLarge(format!("{} bytes, more than {}", bytes.len(), limits.max_tar_bytes)));
        }
        let mut ar = tar::Archive::new(bytes);
        let entries = ar.entries().map_err(|e| PackageError::Tar(e.to_string()))?;
        let mut ebdb: Option<(String, Vec<u8>)> = None;
        let mut sigs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut media: Vec<MediaFile> = Vec::new();
        let mut media_bytes = 0u64;
        let mut count = 0usize;
        for entry in entries {
            let mut entry = entry.map_err(|e| PackageError::Tar(e.to_string()))?;
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let bad = |what: String| PackageError::Entry { name: raw_name.clone(), what };
            let ty = entry.header().entry_type();
            let name = raw_name.strip_prefix("./").unwrap_or(&raw_name).to_string();
            if ty.is_dir() && (name.is_empty() || name == "." || name == "./") {
                continue;
            }
            if !(ty.is_file() || ty == tar::EntryType::Continuous) {
                return Err(bad(format!("entries of type {ty:?} are not accepted (plain files only)")));
            }
            count += 1;
            if count > limits.max_entries {
                return Err(PackageError::TooLarge(format!("more than {} files", limits.max_entries)));
            }
            valid_media_name(&name).map_err(bad)?;
            if media.iter().any(|m| m.name == name)
                || ebdb.as_ref().is_some_and(|e| e.0 == name)
                || sigs.iter().any(|s| s.0 == name)
            {
                return Err(bad("the name appears twice".into()));
            }
            let size = entry.size();
            let is_xml = (name.starts_with("EBDB_") || name.starts_with("EBDS_EBDB_")) && name.ends_with(".xml");
            let cap = if is_xml { limits.max_xml_bytes } else { limits.max_media_bytes.saturating_sub(media_bytes) };
            if size > cap {
                return Err(PackageError::TooLarge(format!("{name}: {size} bytes, more than {cap}")));
            }
            let mut data = Vec::with_capacity(size.min(cap).min(bytes.len() as u64) as usize);
            (&mut entry).take(cap + 1).read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
            if data.len() as u64 > cap {
                return Err(PackageError::TooLarge(format!("{name}: more than {cap} bytes")));
            }
            if name.starts_with("EBDS_EBDB_") && name.ends_with(".xml") {
                sigs.push((name, data));
            } else if let Some(id) = name.strip_prefix("EBDB_").and_then(|s| s.strip_suffix(".xml")) {
                Ebdid::parse(id).map_err(bad)?;
                if let Some((first, _)) = &ebdb {
                    return Err(PackageError::TwoEbdb(first.clone(), name));
                }
                ebdb = Some((name, data));
            } else {
                media_bytes += data.len() as u64;
                media.push(MediaFile { name, data });
            }
        }
        let (ebdb_file, ebdb) = ebdb.ok_or(PackageError::NoEbdb)?;
        let id = &ebdb_file["EBDB_".len()..ebdb_file.len() - ".xml".len()];
        let ebdid = Ebdid::parse(id).map_err(|e| PackageError::Entry { name: ebdb_file.clone(), what: e })?;
        let mut ebds = None;
        for (name, data) in sigs {
            if name == ebds_name(&ebdid) {
                ebds = Some(data);
            } else {
                return Err(PackageError::StraySignature(name));
            }
        }
        Ok(Package { ebdid, ebdb, ebds, media })
    }
}
