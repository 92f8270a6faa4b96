//! The read path's in-memory directory of principals: every id and ARN in id order, with the
//! indexes that answer phrases (account ids above all), exact ARNs and regexes without reading
//! every ARN. Filters and paging run over it; SQL then fetches only a page's rows.

use std::sync::Arc;

use regex::Regex;
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::vocabulary::AdvisorFilter;

/// Every principal's id and ARN in id order, as of one version of the principals table.
#[derive(Debug)]
pub(super) struct Directory {
    pub(super) version: i64,
    pub(super) ids: Vec<i64>,
    pub(super) arns: Vec<String>,
    pub(super) lowered: Vec<String>,
    /// Positions ordered by lower-cased ARN, for exact lookups by binary search (4 bytes a
    /// principal, where a map would hold a third copy of every ARN).
    pub(super) by_lowered: Vec<u32>,
    /// Positions ordered by ARN, for regexes whose matches begin with known literals.
    pub(super) by_arn: Vec<u32>,
    /// Each account field (`arn:partition:service:region:ACCOUNT:...`) with the positions of
    /// its principals, ordered by account.
    pub(super) accounts: Vec<(String, Vec<u32>)>,
    /// Per principal, the longest run of digits outside its account field (at most 255).
    /// With `accounts`, a phrase of digits (an account id, what Repokid sends) is answered
    /// without reading every ARN.
    pub(super) outside_digits: Vec<u8>,
    /// The positions of principals with digits outside their account field, longest run first:
    /// those a phrase of N digits may match there are a prefix, found without a scan.
    pub(super) by_outside_digits: Vec<u32>,
}

/// The read path's in-memory directory of principals. Filters (phrase, exact ARNs, regex) and
/// paging run over it; SQL fetches only the page's rows. A trigger-maintained version number
/// says when it must be read again, so it is never stale.
#[derive(Debug, Default)]
pub(super) struct DirectoryCache {
    pub(super) current: tokio::sync::RwLock<Option<Arc<Directory>>>,
    pub(super) reload: tokio::sync::Mutex<()>,
}

fn longest_digit_run(text: &str) -> usize {
    text.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

impl Directory {
    pub(super) fn new(version: i64, ids: Vec<i64>, arns: Vec<String>) -> Self {
        let lowered: Vec<String> = arns.iter().map(|arn| arn.to_lowercase()).collect();
        let mut by_lowered: Vec<u32> = (0..lowered.len() as u32).collect();
        by_lowered.sort_by(|&a, &b| lowered[a as usize].cmp(&lowered[b as usize]));
        let mut by_arn: Vec<u32> = (0..arns.len() as u32).collect();
        by_arn.sort_by(|&a, &b| arns[a as usize].cmp(&arns[b as usize]));
        let mut accounts: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        let outside_digits: Vec<u8> = lowered
            .iter()
            .enumerate()
            .map(|(at, arn)| {
                let outside = match crate::arn::Arn::account_range(arn) {
                    Some(field) => {
                        accounts
                            .entry(&arn[field.clone()])
                            .or_default()
                            .push(at as u32);
                        longest_digit_run(&arn[..field.start])
                            .max(longest_digit_run(&arn[field.end..]))
                    }
                    None => longest_digit_run(arn),
                };
                outside.min(255) as u8
            })
            .collect();
        let mut by_outside_digits: Vec<u32> = (0..lowered.len() as u32)
            .filter(|&at| outside_digits[at as usize] > 0)
            .collect();
        by_outside_digits.sort_by_key(|&at| std::cmp::Reverse(outside_digits[at as usize]));
        let accounts = accounts
            .into_iter()
            .map(|(account, positions)| (account.to_owned(), positions))
            .collect();
        Directory {
            version,
            ids,
            arns,
            lowered,
            by_lowered,
            by_arn,
            accounts,
            outside_digits,
            by_outside_digits,
        }
    }

    /// Positions, in order, of the principals whose ARN starts with one of the literals that
    /// every match of `regex` (anchored at the start) starts with; `None` when the regex has
    /// no such literals (e.g. `.*role`) and every ARN must be tried.
    pub(super) fn starting_like(&self, regex: &Regex) -> Option<Vec<usize>> {
        let hir = regex_syntax::Parser::new().parse(regex.as_str()).ok()?;
        let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
        let literals = prefixes.literals()?;
        if literals.iter().any(|literal| literal.as_bytes().is_empty()) {
            return None;
        }
        let arn = |at: &u32| self.arns[*at as usize].as_bytes();
        let mut found: Vec<usize> = Vec::new();
        for literal in literals {
            let prefix = literal.as_bytes();
            let first = self.by_arn.partition_point(|at| arn(at) < prefix);
            found.extend(
                self.by_arn[first..]
                    .iter()
                    .take_while(|at| arn(at).starts_with(prefix))
                    .map(|&at| at as usize),
            );
        }
        found.sort_unstable();
        found.dedup();
        Some(found)
    }

    /// Positions, in order, of the principals (`among` these, if given) whose lower-cased ARN
    /// contains `phrase`.
    pub(super) fn containing(&self, phrase: &str, among: Option<Vec<usize>>) -> Vec<usize> {
        let finder = memchr::memmem::Finder::new(phrase.as_bytes());
        let contains = |at: usize| finder.find(self.lowered[at].as_bytes()).is_some();
        if let Some(mut among) = among {
            among.retain(|&at| contains(at));
            return among;
        }
        if !phrase.bytes().all(|b| b.is_ascii_digit()) {
            return (0..self.lowered.len()).filter(|&at| contains(at)).collect();
        }
        // Digits cannot span the colons around the account field: they match inside it (look
        // in the distinct accounts) or outside it (only where a long enough run of digits is).
        let mut found: Vec<usize> = self
            .accounts
            .iter()
            .filter(|(account, _)| finder.find(account.as_bytes()).is_some())
            .flat_map(|(_, positions)| positions.iter().map(|&at| at as usize))
            .collect();
        let run = phrase.len().min(255);
        let long_enough = self
            .by_outside_digits
            .partition_point(|&at| usize::from(self.outside_digits[at as usize]) >= run);
        found.extend(
            self.by_outside_digits[..long_enough]
                .iter()
                .map(|&at| at as usize)
                .filter(|&at| contains(at)),
        );
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Positions of the principals whose lower-cased ARN is `lowered`.
    pub(super) fn positions_of(&self, lowered: &str) -> &[u32] {
        let key = |at: &u32| self.lowered[*at as usize].as_str();
        let first = self.by_lowered.partition_point(|at| key(at) < lowered);
        let end = self.by_lowered.partition_point(|at| key(at) <= lowered);
        &self.by_lowered[first..end]
    }

    /// How many principals match `filter`, and the ids of those on the page.
    pub(super) fn select(&self, filter: &AdvisorFilter, page: i64, count: i64) -> (i64, Vec<i64>) {
        let offset = usize::try_from((page - 1).saturating_mul(count)).unwrap_or(usize::MAX);
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let phrase = filter
            .phrase
            .as_deref()
            .filter(|p| !p.is_empty())
            .map(str::to_lowercase);
        if filter.arns.is_none() && phrase.is_none() && filter.regex.is_none() {
            // Unfiltered: a slice of the directory, whatever its size.
            let page_ids = self.ids.iter().skip(offset).take(count).copied().collect();
            return (self.ids.len() as i64, page_ids);
        }
        // The narrowest way in first; the filters it did not apply after it.
        let starting_like = match (&filter.arns, &phrase, &filter.regex) {
            (None, None, Some(regex)) => self.starting_like(regex),
            _ => None,
        };
        let with_arns = filter.arns.as_ref().map(|arns| {
            let mut found: Vec<usize> = arns
                .iter()
                .flat_map(|arn| self.positions_of(&arn.to_lowercase()))
                .map(|&at| at as usize)
                .collect();
            found.sort_unstable();
            found.dedup();
            found
        });
        let matches = |at: &usize| {
            filter
                .regex
                .as_ref()
                .is_none_or(|regex| regex.is_match(&self.arns[*at]))
        };
        let positions: Vec<usize> = match (with_arns, &phrase, starting_like) {
            (among, Some(phrase), _) => self
                .containing(phrase, among)
                .into_iter()
                .filter(matches)
                .collect(),
            (Some(found), None, _) | (None, None, Some(found)) => {
                found.into_iter().filter(matches).collect()
            }
            // Only the matches are listed, never every principal.
            (None, None, None) => (0..self.ids.len()).filter(matches).collect(),
        };
        let page_ids = positions
            .iter()
            .skip(offset)
            .take(count)
            .map(|&at| self.ids[at])
            .collect();
        (positions.len() as i64, page_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The account index answers digit phrases exactly as reading every ARN would.
    #[test]
    fn phrases_match_as_a_scan_of_every_arn_would() {
        let long_run = "7".repeat(300);
        let arns: Vec<String> = [
            "arn:aws:iam::111111111111:role/App",
            "arn:aws:iam::111111111111:role/cross-222222222222",
            "arn:aws:iam::222222222222:user/Alice",
            "arn:aws:iam::333333333333:role/p-00042",
            "arn:aws-cn:iam::444444444444:policy/Pol",
            "arn:aws:iam::123:role/Short",
            "not an arn 111111111111",
            "arn:aws:iam:",
            "",
            "ARN:AWS:IAM::555555555555:ROLE/UPPER",
            &format!("arn:aws:iam::666666666666:role/{long_run}"),
        ]
        .iter()
        .map(|arn| arn.to_string())
        .collect();
        let ids = (1..=arns.len() as i64).collect();
        let directory = Directory::new(1, ids, arns);
        let phrases = [
            "111111111111".to_owned(),
            "222222222222".to_owned(),
            "1111".to_owned(),
            "2".to_owned(),
            "00042".to_owned(),
            "123".to_owned(),
            "555555555555".to_owned(),
            "role/".to_owned(),
            "7".repeat(256),
            "7".repeat(301),
            "999".to_owned(),
        ];
        for phrase in &phrases {
            let scanned: Vec<usize> = (0..directory.lowered.len())
                .filter(|&at| directory.lowered[at].contains(phrase.as_str()))
                .collect();
            assert_eq!(
                directory.containing(phrase, None),
                scanned,
                "phrase {phrase:?}"
            );
        }
        assert_eq!(directory.containing("111111111111", None), vec![0, 1, 6]);
    }

    /// Narrowing by a regex's literal prefixes finds exactly what trying every ARN finds.
    #[test]
    fn regexes_match_as_trying_every_arn_would() {
        let arns: Vec<String> = [
            "arn:aws:iam::111111111111:role/App",
            "arn:aws:iam::111111111111:role/app",
            "arn:aws:iam::111111111111:user/Alice",
            "arn:aws:iam::222222222222:role/App",
            "arn:aws-cn:iam::111111111111:role/App",
            "ARN:AWS:IAM::111111111111:ROLE/APP",
            "",
        ]
        .iter()
        .map(|arn| arn.to_string())
        .collect();
        let directory = Directory::new(1, (1..=arns.len() as i64).collect(), arns);
        let patterns = [
            ("arn:aws:iam::111111111111:role/", true),
            ("arn:aws:iam::(111111111111|222222222222):role/App", true),
            ("arn:aws(-cn)?:iam::111111111111:", true),
            ("(?i)arn:aws:iam::111111111111:role/app", true),
            ("arn:aws:iam::\\d+:user/", true),
            (".*role/App", false),
            ("", false),
            ("[a-z]+:aws", false),
        ];
        for (pattern, narrows) in patterns {
            let regex = Regex::new(&format!(r"\A(?:{pattern})")).unwrap();
            let tried: Vec<usize> = (0..directory.arns.len())
                .filter(|&at| regex.is_match(&directory.arns[at]))
                .collect();
            let filter = AdvisorFilter {
                regex: Some(regex.clone()),
                ..Default::default()
            };
            let (total, ids) = directory.select(&filter, 1, 100);
            let expected: Vec<i64> = tried.iter().map(|&at| directory.ids[at]).collect();
            assert_eq!((total, ids), (tried.len() as i64, expected), "{pattern}");
            assert_eq!(
                directory.starting_like(&regex).is_some(),
                narrows,
                "{pattern} narrows"
            );
        }
    }
}
