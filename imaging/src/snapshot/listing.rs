//! Walking a snapshot's block list in order, one page at a time.
//!
//! ListSnapshotBlocks returns the blocks that hold data, in ascending index order, up to 10 000 a
//! page with a `NextToken` for the rest. A 64 TiB volume has 134 million blocks, so the list is
//! never held whole: the fetcher asks this cursor about each block index in turn, and the cursor
//! answers from the current page or asks for the next one. Memory stays one page.
//!
//! The next page is asked for from the block after the last one listed (`StartingBlockIndex`),
//! not with the page's `NextToken`: the EBS direct APIs FAQ gives a next token 60 minutes (a block
//! token seven days), and a full page is 5 GiB to image (and upload) before the next is needed. The token only says that more pages follow, and
//! is used as such right after a page that listed nothing (where there is no index to go on from).
//!
//! The pages come from the network, so they are checked, not trusted: indices must rise strictly
//! across pages and stay inside the volume, every listed block needs a token, and a server that
//! keeps answering empty pages with a new `NextToken` is stopped (see [`Listing::empty_page_limit`]).
//! An index out of order would otherwise make a block silently read as a hole.

use std::collections::VecDeque;

/// Consecutive empty pages always taken, however small the volume.
pub(super) const MIN_EMPTY_PAGES: u64 = 100;
/// The API's smallest page (`MaxResults` is at least 100).
const MIN_PAGE: u64 = 100;

/// One block as a page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListedBlock {
    /// Block index (offset / block size).
    pub index: u64,
    /// The token GetSnapshotBlock needs.
    pub token: String,
}

/// Where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Continuation {
    /// At this block index (`StartingBlockIndex`): the block after the last one listed.
    From(u64),
    /// With this `NextToken`, received with a page that listed nothing.
    Token(String),
}

/// What the listing says about one block index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The block holds data; fetch it with this token.
    Listed(String),
    /// Never written: it reads as zeros, and no request is made.
    Hole,
    /// The current page is used up and another follows: fetch it from here, give it to
    /// [`Listing::accept`], and ask again.
    NeedPage(Continuation),
}

/// The cursor over a snapshot's pages.
#[derive(Debug)]
pub(super) struct Listing {
    total_blocks: u64,
    page: VecDeque<ListedBlock>,
    next: Option<Continuation>,
    last_index: Option<u64>,
    empty_pages: u64,
    listed: u64,
}

impl Listing {
    /// A cursor for a volume of `total_blocks` blocks, before its first page.
    pub(super) fn new(total_blocks: u64) -> Self {
        Self {
            total_blocks,
            page: VecDeque::new(),
            next: None,
            last_index: None,
            empty_pages: 0,
            listed: 0,
        }
    }

    /// Takes the next page: its blocks as `(index, token)` pairs as the service sent them, and its
    /// `NextToken`. Refuses a page that breaks the order or leaves the volume.
    pub(super) fn accept(
        &mut self,
        blocks: impl IntoIterator<Item = (Option<i32>, Option<String>)>,
        next_token: Option<String>,
    ) -> Result<(), String> {
        let before = self.page.len();
        for (index, token) in blocks {
            let index = index.ok_or("a listed block has no index")?;
            let index = u64::try_from(index)
                .map_err(|_| format!("a listed block has the negative index {index}"))?;
            if index >= self.total_blocks {
                return Err(format!(
                    "block {index} is listed, but the volume has only {} blocks",
                    self.total_blocks
                ));
            }
            if self.last_index.is_some_and(|last| index <= last) {
                return Err(format!(
                    "block {index} is listed after block {}: the list is not in ascending order",
                    self.last_index.unwrap_or_default()
                ));
            }
            let token = token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| format!("block {index} is listed without a block token"))?;
            self.last_index = Some(index);
            self.page.push_back(ListedBlock { index, token });
        }
        let added = self.page.len() - before;
        self.listed += added as u64;
        let next_token = next_token.filter(|t| !t.is_empty());
        if added == 0 && next_token.is_some() {
            self.empty_pages += 1;
            if self.empty_pages > self.empty_page_limit() {
                return Err(format!(
                    "{} pages in a row listed no block but promised more",
                    self.empty_pages
                ));
            }
        } else {
            self.empty_pages = 0;
        }
        self.next = next_token.map(|token| match self.last_index {
            Some(last) if added > 0 => Continuation::From(last + 1),
            _ => Continuation::Token(token),
        });
        Ok(())
    }

    /// What block `index` is. Indices must be asked in ascending order (the fetcher walks the
    /// volume from the start).
    pub(super) fn lookup(&mut self, index: u64) -> Lookup {
        match self.page.front() {
            Some(block) if block.index == index => {
                Lookup::Listed(self.page.pop_front().map(|b| b.token).unwrap_or_default())
            }
            Some(block) => {
                // Indices rise strictly (`accept`) and are asked in order, so the front block is
                // always ahead of `index`: a block behind it could never be fetched.
                debug_assert!(block.index > index, "block {} was skipped", block.index);
                Lookup::Hole
            }
            None => match &self.next {
                Some(next) => Lookup::NeedPage(next.clone()),
                None => Lookup::Hole,
            },
        }
    }

    /// The next listed block, walking the pages: what a probe needs, however many empty pages
    /// come first. `NeedPage` asks for the next page as [`Listing::lookup`] does; `None` when
    /// the snapshot lists no block at all.
    pub(super) fn next_listed(&mut self) -> Option<Result<ListedBlock, Continuation>> {
        match self.page.pop_front() {
            Some(block) => Some(Ok(block)),
            None => self.next.clone().map(Err),
        }
    }

    /// Empty pages in a row taken before the listing is called a loop. AWS may answer an empty
    /// page with a `NextToken` while it scans a sparse stretch of the volume, but even if each
    /// empty page covered only the API's smallest page of block indices, there could not be more
    /// of them than the volume has such stretches (plus [`MIN_EMPTY_PAGES`]).
    pub(super) fn empty_page_limit(&self) -> u64 {
        self.total_blocks / MIN_PAGE + MIN_EMPTY_PAGES
    }

    /// Blocks listed so far (all of them once the walk is over).
    pub(super) fn listed(&self) -> u64 {
        self.listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(indices: &[i32]) -> Vec<(Option<i32>, Option<String>)> {
        indices
            .iter()
            .map(|&i| (Some(i), Some(format!("t{i}"))))
            .collect()
    }

    /// The lookups of blocks `0..total` over `pages` (each with a next token but the last).
    fn walk(total: u64, pages: &[&[i32]]) -> Result<Vec<Option<String>>, String> {
        let token = |n: usize| (n + 1 < pages.len()).then(|| format!("page{}", n + 1));
        let mut listing = Listing::new(total);
        listing.accept(page(pages[0]), token(0))?;
        let mut at = 0;
        let mut out = Vec::new();
        for index in 0..total {
            loop {
                match listing.lookup(index) {
                    Lookup::Listed(token) => out.push(Some(token)),
                    Lookup::Hole => out.push(None),
                    Lookup::NeedPage(_) => {
                        at += 1;
                        let next = pages.get(at).ok_or("asked past the last page")?;
                        listing.accept(page(next), token(at))?;
                        continue;
                    }
                }
                break;
            }
        }
        Ok(out)
    }

    #[test]
    fn listed_blocks_get_their_tokens_and_the_rest_are_holes_across_pages() {
        let out = walk(8, &[&[1, 2], &[], &[5], &[7]]).unwrap();
        let expected: Vec<Option<String>> = [
            None,
            Some("t1"),
            Some("t2"),
            None,
            None,
            Some("t5"),
            None,
            Some("t7"),
        ]
        .iter()
        .map(|t| t.map(str::to_owned))
        .collect();
        assert_eq!(out, expected);
    }

    #[test]
    fn the_next_page_starts_after_the_last_listed_block_or_with_the_token_after_an_empty_page() {
        let mut listing = Listing::new(100);
        listing.accept(page(&[3, 7]), Some("t1".into())).unwrap();
        assert_eq!(listing.lookup(3), Lookup::Listed("t3".into()));
        assert_eq!(listing.lookup(7), Lookup::Listed("t7".into()));
        assert_eq!(listing.lookup(8), Lookup::NeedPage(Continuation::From(8)));
        listing.accept(page(&[]), Some("t2".into())).unwrap();
        assert_eq!(
            listing.lookup(8),
            Lookup::NeedPage(Continuation::Token("t2".into()))
        );
        listing.accept(page(&[9]), Some("t3".into())).unwrap();
        assert_eq!(listing.lookup(8), Lookup::Hole);
        assert_eq!(listing.lookup(9), Lookup::Listed("t9".into()));
        assert_eq!(listing.lookup(10), Lookup::NeedPage(Continuation::From(10)));
        let mut empty_first = Listing::new(100);
        empty_first.accept(page(&[]), Some("t0".into())).unwrap();
        assert_eq!(
            empty_first.lookup(0),
            Lookup::NeedPage(Continuation::Token("t0".into()))
        );
    }

    #[test]
    fn the_next_listed_block_is_found_past_empty_pages() {
        let mut listing = Listing::new(100);
        listing.accept(page(&[]), Some("t1".into())).unwrap();
        assert_eq!(
            listing.next_listed(),
            Some(Err(Continuation::Token("t1".into())))
        );
        listing.accept(page(&[42, 43]), None).unwrap();
        let first = ListedBlock {
            index: 42,
            token: "t42".into(),
        };
        assert_eq!(listing.next_listed(), Some(Ok(first)));
        let mut none = Listing::new(100);
        none.accept(page(&[]), None).unwrap();
        assert_eq!(none.next_listed(), None);
    }

    #[test]
    fn the_listed_count_covers_every_page() {
        let mut listing = Listing::new(10);
        listing.accept(page(&[0, 3]), Some("n".into())).unwrap();
        listing.accept(page(&[4]), None).unwrap();
        assert_eq!(listing.listed(), 3);
    }

    #[test]
    fn a_last_page_with_an_empty_token_ends_the_listing() {
        let mut listing = Listing::new(4);
        listing.accept(page(&[0]), Some(String::new())).unwrap();
        assert_eq!(listing.lookup(0), Lookup::Listed("t0".into()));
        assert_eq!(listing.lookup(1), Lookup::Hole);
    }

    #[test]
    fn hostile_pages_are_refused() {
        let refused = |pages: &[&[i32]]| walk(8, pages).unwrap_err();
        assert!(refused(&[&[3, 2]]).contains("not in ascending order"));
        assert!(refused(&[&[3, 3]]).contains("not in ascending order"));
        assert!(refused(&[&[3], &[3]]).contains("not in ascending order"));
        assert!(refused(&[&[3], &[1]]).contains("not in ascending order"));
        assert!(refused(&[&[8]]).contains("only 8 blocks"));
        assert!(refused(&[&[-1]]).contains("negative index -1"));
        let mut listing = Listing::new(8);
        let no_token = listing.accept([(Some(1), None)], None).unwrap_err();
        assert!(
            no_token.contains("block 1 is listed without a block token"),
            "{no_token}"
        );
        let empty_token = listing
            .accept([(Some(1), Some(String::new()))], None)
            .unwrap_err();
        assert!(
            empty_token.contains("without a block token"),
            "{empty_token}"
        );
        let no_index = listing
            .accept([(None, Some("t".into()))], None)
            .unwrap_err();
        assert!(no_index.contains("no index"), "{no_index}");
    }

    #[test]
    fn endless_empty_pages_are_a_loop_but_a_sparse_volume_may_give_many() {
        assert_eq!(Listing::new(8).empty_page_limit(), MIN_EMPTY_PAGES);
        // 1 TiB of 512 KiB blocks: 2 097 152 blocks, at most 20 971 stretches of 100.
        assert_eq!(
            Listing::new(2_097_152).empty_page_limit(),
            20_971 + MIN_EMPTY_PAGES
        );
        let mut listing = Listing::new(1000);
        let limit = listing.empty_page_limit();
        assert_eq!(limit, 110);
        for _ in 0..limit {
            listing.accept(page(&[]), Some("again".into())).unwrap();
        }
        listing.accept(page(&[2]), Some("again".into())).unwrap();
        for _ in 0..limit {
            listing.accept(page(&[]), Some("again".into())).unwrap();
        }
        let err = listing.accept(page(&[]), Some("again".into())).unwrap_err();
        assert!(err.contains("111 pages in a row"), "{err}");
        let mut done = Listing::new(8);
        for _ in 0..=limit {
            done.accept(page(&[]), None).unwrap();
        }
    }
}
