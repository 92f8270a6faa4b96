//! Enums whose values have names (in settings files, in the database, on the wire): each
//! declares its names once, in one table, and parsing, printing and the "one of ..." of an
//! error message all come from it.

/// An enum named by [`Named::NAMES`]; every variant appears there exactly once.
pub trait Named: Copy + PartialEq + Sized + 'static {
    const NAMES: &'static [(&'static str, Self)];

    fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, value)| *value == self)
            .map(|(name, _)| *name)
            .expect("every variant is in NAMES")
    }

    /// The variant named exactly `text`.
    fn from_name(text: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, value)| *value)
    }

    /// The variant named `text` in any case.
    fn from_name_ignoring_case(text: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, value)| *value)
    }

    /// The names for a message: `a or b`, or `one of a, b, c`.
    fn choices() -> String {
        let names: Vec<&str> = Self::NAMES.iter().map(|(name, _)| *name).collect();
        match names.as_slice() {
            [one, other] => format!("{one} or {other}"),
            names => format!("one of {}", names.join(", ")),
        }
    }
}

/// Implements [`Named`] and `Display` for an enum from `Variant => "name"` pairs.
macro_rules! named {
    ($enum:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $crate::named::Named for $enum {
            const NAMES: &'static [(&'static str, Self)] = &[$(($name, <$enum>::$variant)),+];
        }
        impl $enum {
            #[allow(dead_code)] // not every named enum is printed
            pub fn as_str(self) -> &'static str {
                <Self as $crate::named::Named>::as_str(self)
            }
        }
        impl TryFrom<String> for $enum {
            type Error = String;

            fn try_from(text: String) -> Result<Self, String> {
                <Self as $crate::named::Named>::from_name(&text).ok_or_else(|| {
                    format!("{text:?} is not {}", <Self as $crate::named::Named>::choices())
                })
            }
        }
        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($crate::named::Named::as_str(*self))
            }
        }
    };
}
pub(crate) use named;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Two {
        A,
        B,
    }
    named!(Two { A => "alpha", B => "beta" });

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Three {
        X,
        Y,
        Z,
    }
    named!(Three { X => "x", Y => "y-y", Z => "z" });

    #[test]
    fn names_round_trip_and_list_themselves() {
        assert_eq!(Two::B.as_str(), "beta");
        assert_eq!(Two::from_name("alpha"), Some(Two::A));
        assert_eq!(Two::from_name("ALPHA"), None);
        assert_eq!(Two::from_name_ignoring_case("ALPHA"), Some(Two::A));
        assert_eq!(Two::choices(), "alpha or beta");
        assert_eq!(Three::choices(), "one of x, y-y, z");
        assert_eq!(Three::Y.to_string(), "y-y");
        assert_eq!(Three::Z.as_str(), "z");
        assert_eq!(Three::try_from("y-y".to_owned()), Ok(Three::Y));
        assert_eq!(
            Two::try_from("gamma".to_owned()),
            Err("\"gamma\" is not alpha or beta".to_owned())
        );
        for (name, value) in Three::NAMES {
            assert_eq!(Three::from_name(name), Some(*value));
        }
    }
}
