//! The simulated prefix (KV) cache: vLLM-style chained block hashes with LRU eviction.
//!
//! A prompt's tokens are cut into full blocks of `block_size` tokens (a partial last block is
//! never cached); block `i`'s hash covers its tokens and block `i - 1`'s hash, so a block hit
//! implies the whole prefix before it matches. A request's cached prefix is the longest run of
//! leading blocks present, capped so at least one prompt token is always computed (as vLLM
//! does, because the last position must run to produce logits).

use std::collections::{BTreeMap, HashMap};

use super::tokens::{mix, sequence_hash};

/// Chained hashes of the full blocks of `tokens`.
pub fn block_hashes(tokens: &[u64], block_size: usize) -> Vec<u64> {
    let mut parent = 0u64;
    tokens
        .chunks_exact(block_size.max(1))
        .map(|block| {
            parent = mix(parent, sequence_hash(block));
            parent
        })
        .collect()
}

/// A fixed-capacity set of blocks evicted least-recently-used first.
#[derive(Debug)]
pub struct PrefixCache {
    block_size: u64,
    capacity_blocks: usize,
    /// block hash → last-use stamp
    blocks: HashMap<u64, u64>,
    /// last-use stamp → block hash, oldest first
    lru: BTreeMap<u64, u64>,
    clock: u64,
}

impl PrefixCache {
    /// A cache holding up to `capacity_tokens` tokens (rounded down to whole blocks); a
    /// capacity of 0 disables it.
    pub fn new(block_size: u32, capacity_tokens: u64) -> Self {
        let block_size = u64::from(block_size.max(1));
        PrefixCache {
            block_size,
            capacity_blocks: usize::try_from(capacity_tokens / block_size).unwrap_or(usize::MAX),
            blocks: HashMap::new(),
            lru: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Tokens per block.
    pub fn block_size(&self) -> usize {
        self.block_size as usize
    }

    /// False when the capacity is under one block.
    pub fn enabled(&self) -> bool {
        self.capacity_blocks > 0
    }

    /// Tokens currently held.
    pub fn resident_tokens(&self) -> u64 {
        self.blocks.len() as u64 * self.block_size
    }

    /// How many leading tokens of a prompt of `prompt_len` tokens with these block hashes
    /// are cached. The hit blocks count as used now.
    pub fn lookup(&mut self, blocks: &[u64], prompt_len: u64) -> u64 {
        let usable = (prompt_len.saturating_sub(1) / self.block_size) as usize;
        let hit = blocks
            .iter()
            .take(usable)
            .take_while(|h| self.blocks.contains_key(h))
            .count();
        self.touch_all(&blocks[..hit]);
        hit as u64 * self.block_size
    }

    /// Records a computed prompt's blocks, evicting the least recently used beyond capacity.
    pub fn insert(&mut self, blocks: &[u64]) {
        if self.capacity_blocks == 0 {
            return;
        }
        self.touch_all(blocks);
        while self.blocks.len() > self.capacity_blocks {
            let Some((_, hash)) = self.lru.pop_first() else {
                break;
            };
            self.blocks.remove(&hash);
        }
    }

    /// Drops every cached block (what vLLM's `POST /reset_prefix_cache` does); the number of
    /// tokens dropped.
    pub fn clear(&mut self) -> u64 {
        let dropped = self.resident_tokens();
        self.blocks.clear();
        self.lru.clear();
        dropped
    }

    /// Stamps blocks as used now, last block first: the tail of a prefix then ages out before
    /// its head (vLLM frees blocks in reverse for the same reason), and a prefix that does not
    /// fit keeps its leading blocks.
    fn touch_all(&mut self, blocks: &[u64]) {
        for &hash in blocks.iter().rev() {
            self.clock += 1;
            if let Some(old) = self.blocks.insert(hash, self.clock) {
                self.lru.remove(&old);
            }
            self.lru.insert(self.clock, hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(tag: u64, len: u64) -> Vec<u64> {
        (0..len).map(|i| mix(tag, i)).collect()
    }

    #[test]
    fn hashes_are_chained_over_full_blocks() {
        let a = prompt(1, 40);
        let h = block_hashes(&a, 16);
        assert_eq!(h.len(), 2);
        let mut b = a.clone();
        b[0] = 999;
        let hb = block_hashes(&b, 16);
        // Same second-block tokens, different first block: the chain makes block 2 differ.
        assert_ne!(h[1], hb[1]);
        assert_eq!(block_hashes(&a[..32], 16), h);
    }

    #[test]
    fn hit_is_longest_leading_run_and_leaves_one_token() {
        let mut c = PrefixCache::new(16, 10_000);
        let a = prompt(1, 64);
        let ha = block_hashes(&a, 16);
        assert_eq!(c.lookup(&ha, 64), 0);
        c.insert(&ha);
        // Fully cached 64-token prompt: the last block is recomputed.
        assert_eq!(c.lookup(&ha, 64), 48);
        let mut longer = a.clone();
        longer.extend(prompt(2, 30));
        assert_eq!(c.lookup(&block_hashes(&longer, 16), 94), 64);
        let mut diverged = a.clone();
        diverged[20] = 5;
        assert_eq!(c.lookup(&block_hashes(&diverged, 16), 64), 16);
        assert_eq!(c.resident_tokens(), 64);
    }

    #[test]
    fn lru_evicts_oldest_and_tails_first() {
        let mut c = PrefixCache::new(16, 64);
        let a = block_hashes(&prompt(1, 64), 16);
        let b = block_hashes(&prompt(2, 32), 16);
        c.insert(&a);
        c.insert(&b);
        assert_eq!(c.resident_tokens(), 64);
        // Two of a's blocks went, its tail first, so its head still hits.
        assert_eq!(c.lookup(&a, 65), 32);
        assert_eq!(c.lookup(&b, 33), 32);
        // A prompt larger than the cache keeps its head.
        let big = block_hashes(&prompt(3, 160), 16);
        c.insert(&big);
        assert_eq!(c.lookup(&big, 161), 64);
    }

    #[test]
    fn zero_capacity_disables() {
        let mut c = PrefixCache::new(16, 8);
        let a = block_hashes(&prompt(1, 64), 16);
        c.insert(&a);
        assert_eq!(c.lookup(&a, 64), 0);
        assert_eq!(c.resident_tokens(), 0);
    }
}
