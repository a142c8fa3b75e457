//! Ownership across user namespaces, in one place: id maps (`CONTAINER:HOST:SIZE`, as in
//! `/proc/PID/uid_map`) applied both ways, and umoci's rootless owner record (the
//! `user.rootlesscontainers` xattr in which a rootless unpack keeps an entry's image owner, written by
//! the applier and read back by the diff walk and umoci's repack).

use std::str::FromStr;

use crate::error::{Error, Result};

/// A uid or gid mapping `CONTAINER:HOST:SIZE` (as in `/proc/PID/uid_map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    /// First id inside the image.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// How many ids.
    pub size: u32,
}

impl FromStr for IdMap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Other(format!(
                "invalid id mapping {s:?}: expected CONTAINER:HOST:SIZE"
            ))
        };
        let parts: Vec<u32> = s
            .split(':')
            .map(|p| p.trim().parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        match parts.as_slice() {
            [c, h, n] if *n > 0 => Ok(IdMap {
                container: *c,
                host: *h,
                size: *n,
            }),
            _ => Err(bad()),
        }
    }
}

/// Maps an image id to a host id through `maps` (identity when `maps` is empty).
pub fn map_id(maps: &[IdMap], id: u32) -> Option<u32> {
    if maps.is_empty() {
        return Some(id);
    }
    maps.iter().find_map(|m| {
        let off = id.checked_sub(m.container)?;
        (off < m.size).then(|| m.host.checked_add(off)).flatten()
    })
}

/// The image id whose host id is `host` under `maps` (identity when `maps` is empty).
pub(crate) fn to_container(maps: &[IdMap], host: u32) -> Option<u32> {
    if maps.is_empty() {
        return Some(host);
    }
    maps.iter().find_map(|m| {
        let off = host.checked_sub(m.host)?;
        (off < m.size)
            .then(|| m.container.checked_add(off))
            .flatten()
    })
}

/// The extended attribute in which umoci's rootless unpack records an entry's real owner (a protobuf
/// `Resource { uint32 uid = 1; uint32 gid = 2; }` from rootlesscontaine.rs).
pub const ROOTLESS_XATTR: &str = "user.rootlesscontainers";

/// The "no change" id in a rootless record.
const NOOP_ID: u32 = u32::MAX;

/// An owner recorded by a rootless unpack; `None` leaves the file's own id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RootlessOwner {
    /// The recorded uid.
    pub uid: Option<u32>,
    /// The recorded gid.
    pub gid: Option<u32>,
}

/// Parses the protobuf of a [`ROOTLESS_XATTR`] value. Absent fields, and the NoopID `4294967295`, mean
/// "unchanged"; unknown fields are skipped as protobuf requires.
pub fn parse_rootless(bytes: &[u8]) -> Result<RootlessOwner> {
    let bad = |why: &str| Error::Other(format!("malformed {ROOTLESS_XATTR} record: {why}"));
    fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*i)?;
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = RootlessOwner::default();
    let mut i = 0;
    while i < bytes.len() {
        let key = varint(bytes, &mut i).ok_or_else(|| bad("truncated field key"))?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(bytes, &mut i).ok_or_else(|| bad("truncated varint"))?;
                let id = u32::try_from(v).map_err(|_| bad("id does not fit 32 bits"))?;
                let id = (id != NOOP_ID).then_some(id);
                match field {
                    1 => out.uid = id,
                    2 => out.gid = id,
                    _ => {}
                }
            }
            1 => i += 8,
            5 => i += 4,
            2 => {
                let len = varint(bytes, &mut i).ok_or_else(|| bad("truncated length"))?;
                i = usize::try_from(len)
                    .ok()
                    .and_then(|l| i.checked_add(l))
                    .ok_or_else(|| bad("length out of range"))?;
            }
            _ => return Err(bad("unsupported wire type")),
        }
    }
    if i > bytes.len() {
        return Err(bad("truncated field"));
    }
    Ok(out)
}

/// Encodes umoci's `user.rootlesscontainers` record: uid and gid, with NoopID for 0 (the owner the
/// unprivileged user stands for).
pub fn encode_rootless(uid: u32, gid: u32) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }
    let noop = |id: u32| if id == 0 { u32::MAX } else { id };
    let mut out = Vec::with_capacity(12);
    out.push(0x08);
    varint(&mut out, noop(uid).into());
    out.push(0x10);
    varint(&mut out, noop(gid).into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_go_both_ways() {
        let m: IdMap = "0:100000:65536".parse().unwrap();
        assert_eq!(map_id(&[m], 1000), Some(101000));
        assert_eq!(map_id(&[m], 70000), None);
        assert_eq!(map_id(&[], 7), Some(7));
        assert!("1:2".parse::<IdMap>().is_err());
        assert_eq!(to_container(&[m], 101000), Some(1000));
        assert_eq!(to_container(&[m], 7), None);
    }

    #[test]
    fn rootless_record_parses_ids_and_noop() {
        // uid=1000, gid=NoopID
        let mut b = vec![0x08, 0xe8, 0x07, 0x10];
        b.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        let o = parse_rootless(&b).unwrap();
        assert_eq!(o.uid, Some(1000));
        assert_eq!(o.gid, None);
        assert_eq!(parse_rootless(&[]).unwrap(), RootlessOwner::default());
        assert!(parse_rootless(&[0x08]).is_err());
        assert!(parse_rootless(&[0x0a, 0x05, 0x01]).is_err());
    }

    #[test]
    fn rootless_record_matches_umoci() {
        // umoci writes 08e807 10d00f for 1000:2000 and NoopID for 0.
        assert_eq!(hex::encode(encode_rootless(1000, 2000)), "08e80710d00f");
        assert_eq!(hex::encode(encode_rootless(0, 5)), "08ffffffff0f1005");
        let o = parse_rootless(&encode_rootless(7, 0)).unwrap();
        assert_eq!((o.uid, o.gid), (Some(7), None));
    }
}
