//! The file format: an 8-byte header, then records, each `[len u32 LE][crc32 u32 LE][payload]`
//! with `payload = [op u8][key_len u16 LE][key][value]`.
//!
//! A record is valid only when its whole payload is present and its checksum matches, so a write
//! cut short (agent killed, host crash before the bytes reached the disk) shows up as an invalid
//! tail, which replay drops.
//!
//! The file may continue with zeros after the last record: space the writer reserved ahead of
//! its writes, so that appending does not change the file's size and an `fdatasync` need not
//! write the inode. A length field of zero is never a record, so zeros read as "no more records".

use std::collections::BTreeMap;

/// The first bytes of every journal file ("Berth journal, format 1").
pub(crate) const HEADER: &[u8; 8] = b"BERTHJ01";

/// A record's fixed part: length and checksum.
const RECORD_HEAD: usize = 8;

/// Records larger than this are refused on write and treated as corruption on read: a length
/// field this large is far likelier a torn or foreign file than a real record.
pub const MAX_RECORD: usize = 16 << 20;

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Put = 1,
    Remove = 2,
}

/// Appends one record to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, op: Op, key: &str, value: &[u8]) {
    let payload_len = 1 + 2 + key.len() + value.len();
    out.reserve(RECORD_HEAD + payload_len);
    let start = out.len();
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(op as u8);
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    let crc = crc32fast::hash(&out[start + RECORD_HEAD..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The bytes a record of this key and value takes.
pub(crate) fn encoded_len(key: &str, value: &[u8]) -> usize {
    RECORD_HEAD + 3 + key.len() + value.len()
}

/// The result of reading a journal file.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// The live entries after every valid record was applied.
    pub entries: BTreeMap<String, Vec<u8>>,
    /// Where the valid records end.
    pub valid_len: u64,
    /// Valid records read.
    pub records: u64,
    /// Why reading stopped before the end of the file, if it did (zeros after the records are
    /// reserved space, not a reason).
    pub invalid_tail: Option<String>,
}

/// Reads every valid record after the header, stopping at the first invalid one.
/// `bytes` must start with [`HEADER`] (checked by the caller).
pub(crate) fn decode(bytes: &[u8]) -> Decoded {
    let mut d = Decoded {
        valid_len: HEADER.len() as u64,
        ..Decoded::default()
    };
    let mut at = HEADER.len();
    while at < bytes.len() {
        match decode_one(&bytes[at..]) {
            Ok((op, key, value, used)) => {
                match op {
                    Op::Put => {
                        d.entries.insert(key.to_owned(), value.to_vec());
                    }
                    Op::Remove => {
                        d.entries.remove(key);
                    }
                }
                at += used;
                d.valid_len = at as u64;
                d.records += 1;
            }
            Err(_) if bytes[at..].iter().all(|b| *b == 0) => break,
            Err(reason) => {
                d.invalid_tail = Some(format!(
                    "{reason} at byte {at} ({} bytes dropped)",
                    bytes.len() - at
                ));
                break;
            }
        }
    }
    d
}

fn decode_one(bytes: &[u8]) -> Result<(Op, &str, &[u8], usize), &'static str> {
    if bytes.len() < RECORD_HEAD {
        return Err("a record header cut short");
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if !(3..=MAX_RECORD).contains(&len) {
        return Err("an impossible record length");
    }
    let Some(payload) = bytes.get(RECORD_HEAD..RECORD_HEAD + len) else {
        return Err("a record cut short");
    };
    if crc32fast::hash(payload) != crc {
        return Err("a record whose checksum does not match");
    }
    let op = match payload[0] {
        1 => Op::Put,
        2 => Op::Remove,
        _ => return Err("a record with an unknown operation"),
    };
    let key_len = u16::from_le_bytes([payload[1], payload[2]]) as usize;
    let Some(key) = payload.get(3..3 + key_len) else {
        return Err("a record whose key overruns it");
    };
    let key = std::str::from_utf8(key).map_err(|_| "a record whose key is not UTF-8")?;
    if op == Op::Remove && payload.len() != 3 + key_len {
        return Err("a removal record with a value");
    }
    Ok((op, key, &payload[3 + key_len..], RECORD_HEAD + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(records: &[(Op, &str, &[u8])]) -> Vec<u8> {
        let mut out = HEADER.to_vec();
        for (op, k, v) in records {
            encode(&mut out, *op, k, v);
        }
        out
    }

    #[test]
    fn puts_and_removes_replay_in_order() {
        let bytes = file(&[
            (Op::Put, "a", b"1"),
            (Op::Put, "b", b"2"),
            (Op::Put, "a", b"3"),
            (Op::Remove, "b", b""),
        ]);
        let d = decode(&bytes);
        assert_eq!(d.invalid_tail, None);
        assert_eq!(d.records, 4);
        assert_eq!(d.valid_len, bytes.len() as u64);
        assert_eq!(d.entries.len(), 1);
        assert_eq!(d.entries["a"], b"3");
        assert_eq!(
            encoded_len("a", b"1"),
            file(&[(Op::Put, "a", b"1")]).len() - 8
        );
    }

    #[test]
    fn a_flipped_bit_ends_the_replay_there() {
        let mut bytes = file(&[(Op::Put, "a", b"one"), (Op::Put, "b", b"two")]);
        let second = HEADER.len() + encoded_len("a", b"one");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let d = decode(&bytes);
        assert_eq!(d.valid_len, second as u64);
        assert_eq!(d.entries.keys().collect::<Vec<_>>(), ["a"]);
        let why = d.invalid_tail.unwrap();
        assert!(
            why.contains("checksum") && why.contains(&format!("byte {second}")),
            "{why}"
        );
    }

    #[test]
    fn zeros_after_the_records_are_reserved_space_and_anything_else_is_a_torn_tail() {
        let mut bytes = file(&[(Op::Put, "a", b"one")]);
        let end = bytes.len() as u64;
        bytes.extend_from_slice(&[0; 1000]);
        let d = decode(&bytes);
        assert_eq!((d.valid_len, d.invalid_tail), (end, None));
        // A torn record inside the reserved space: its start survived, the rest is zeros.
        let at = bytes.len() - 1000;
        bytes[at] = 40;
        let d = decode(&bytes);
        assert_eq!(d.valid_len, end);
        assert!(d.invalid_tail.unwrap().contains("checksum"));
    }

    #[test]
    fn a_huge_length_is_corruption_not_an_allocation() {
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0; 16]);
        let d = decode(&bytes);
        assert_eq!(d.valid_len, 8);
        assert!(d.invalid_tail.unwrap().contains("impossible record length"));
    }

    proptest! {
        /// Cutting the file anywhere keeps exactly the records wholly before the cut.
        #[test]
        fn any_cut_keeps_exactly_the_whole_records(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..12),
            cut_fraction in 0.0f64..1.0,
        ) {
            let records: Vec<(Op, String, Vec<u8>)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| (Op::Put, format!("k{}", i % 4), v.clone()))
                .collect();
            let mut bytes = HEADER.to_vec();
            let mut ends = vec![];
            for (op, k, v) in &records {
                encode(&mut bytes, *op, k, v);
                ends.push(bytes.len());
            }
            let cut = HEADER.len() + ((bytes.len() - HEADER.len()) as f64 * cut_fraction) as usize;
            let d = decode(&bytes[..cut]);
            let whole = ends.iter().filter(|e| **e <= cut).count();
            prop_assert_eq!(d.records as usize, whole);
            let mut expected = BTreeMap::new();
            for (_, k, v) in &records[..whole] {
                expected.insert(k.clone(), v.clone());
            }
            prop_assert_eq!(d.entries, expected);
            prop_assert_eq!(d.invalid_tail.is_some(), ends.iter().all(|e| *e != cut) && cut > HEADER.len());
        }
    }
}
