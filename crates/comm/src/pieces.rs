//! Splitting long buffers into pieces that each fit one MPI call.
//!
//! MPI counts are C `int`s: one call moves at most 2^31 - 1 elements. SKIRT's sumToAll splits
//! longer arrays; so does every bulk operation here. The piece size is a parameter so the
//! splitting itself is tested with tiny pieces.

use std::ops::Range;

/// The largest piece, in elements, for sums (a bounded temporary copy is made per piece).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) const SUM_PIECE: usize = 1 << 24;
/// The largest piece, in bytes, for broadcasts and byte gathers.
pub(crate) const BYTE_PIECE: usize = 1 << 30;

/// The consecutive ranges of at most `max` elements covering `0..len` (none when `len` is 0).
pub(crate) fn pieces(len: usize, max: usize) -> impl Iterator<Item = Range<usize>> {
    let max = max.max(1);
    (0..len.div_ceil(max)).map(move |i| i * max..((i + 1) * max).min(len))
}

/// Reduces `data` in place, piece by piece: `reduce(send, recv)` gets a copy of a piece (MPI
/// reductions need distinct buffers; portable code cannot use MPI_IN_PLACE through rsmpi) and
/// the piece itself. The copy is at most `max` elements, which bounds the extra memory.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) fn reduce_in_pieces<E: Copy>(
    data: &mut [E],
    max: usize,
    mut reduce: impl FnMut(&[E], &mut [E]) -> crate::Result<()>,
) -> crate::Result<()> {
    let mut send = Vec::with_capacity(max.min(data.len()));
    for p in pieces(data.len(), max) {
        send.clear();
        send.extend_from_slice(&data[p.clone()]);
        reduce(&send, &mut data[p])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_sees_every_element_once_in_small_pieces() {
        let mut data: Vec<u64> = (0..10).collect();
        let mut calls = 0;
        reduce_in_pieces(&mut data, 3, |send, recv| {
            assert!(send.len() <= 3 && send.len() == recv.len());
            calls += 1;
            // Two ranks with the same data: the sum doubles every element.
            for (r, s) in recv.iter_mut().zip(send) {
                *r += s;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 4);
        assert_eq!(data, (0..10).map(|x| 2 * x).collect::<Vec<u64>>());
        reduce_in_pieces(&mut [] as &mut [u64], 3, |_, _| panic!("no pieces")).unwrap();
    }

    #[test]
    fn covers_exactly_once() {
        for len in 0..50 {
            for max in 1..9 {
                let ps: Vec<_> = pieces(len, max).collect();
                let mut next = 0;
                for p in &ps {
                    assert_eq!(p.start, next);
                    assert!(p.len() <= max && !p.is_empty());
                    next = p.end;
                }
                assert_eq!(next, len);
                assert_eq!(ps.len(), len.div_ceil(max));
            }
        }
    }

    #[test]
    fn past_the_int_limit() {
        let len = (1usize << 31) + 5;
        let ps: Vec<_> = pieces(len, SUM_PIECE).collect();
        assert!(ps.iter().all(|p| p.len() <= i32::MAX as usize));
        assert_eq!(ps.last().unwrap().end, len);
        assert_eq!(ps.last().unwrap().len(), 5);
    }
}
