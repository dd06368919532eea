//! A deterministic population for the simulators: people with realistic names and
//! phone numbers from several countries, WhatsApp LIDs, groups, and a spread over
//! the three providers so that some people appear in two or three of them with
//! the same phone or LID (the work identity linking will have). Same seed and size,
//! same world.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One human being, as the world knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub index: usize,
    pub first_name: String,
    pub last_name: String,
    /// ISO region of the phone.
    pub country: &'static str,
    /// Country code + number, digits only; `None` for people WhatsApp shows only by LID.
    pub phone: Option<String>,
    /// `<digits>@lid`.
    pub lid: String,
    pub business_name: Option<String>,
    pub email: Option<String>,
    pub in_periskope: bool,
    pub in_wacr: bool,
    pub in_gateway: bool,
    /// Periskope sends `contact_lid` for this person.
    pub periskope_knows_lid: bool,
    /// Indexes into `World::groups`.
    pub groups: Vec<usize>,
    /// Has a 1-1 chat with the connected phone.
    pub has_dm: bool,
    /// Minutes after 2025-01-01 of the last change.
    pub updated_minute: i64,
}

impl Person {
    /// The person's standing in each of their groups, the same at every
    /// provider that shows groups: `member`, `admin` or `superadmin`.
    pub fn group_role(&self) -> &'static str {
        if self.index.is_multiple_of(29) {
            "superadmin"
        } else if self.index.is_multiple_of(11) {
            "admin"
        } else {
            "member"
        }
    }

    pub fn display_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }

    pub fn e164(&self) -> Option<String> {
        self.phone.as_ref().map(|p| format!("+{p}"))
    }

    /// The calling code of the phone's country (`91`, `55`, …).
    pub fn calling_code(&self) -> &'static str {
        COUNTRIES
            .iter()
            .find(|c| c.code == self.country)
            .map(|c| c.cc)
            .unwrap_or("")
    }

    /// How many providers hold this person.
    pub fn provider_count(&self) -> usize {
        [self.in_periskope, self.in_wacr, self.in_gateway]
            .iter()
            .filter(|b| **b)
            .count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub jid: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct World {
    pub seed: u64,
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
}

struct Country {
    code: &'static str,
    cc: &'static str,
    first: &'static [&'static str],
    last: &'static [&'static str],
    email_tld: &'static str,
}

const COUNTRIES: [Country; 6] = [
    Country {
        code: "IN",
        cc: "91",
        first: &[
            "Aarav", "Priya", "Rahul", "Ananya", "Vikram", "Sneha", "Arjun", "Kavya", "Rohan",
            "Isha",
        ],
        last: &[
            "Sharma", "Patel", "Reddy", "Iyer", "Gupta", "Nair", "Singh", "Mehta", "Rao", "Kapoor",
        ],
        email_tld: "in",
    },
    Country {
        code: "BR",
        cc: "55",
        first: &[
            "Ana", "João", "Mariana", "Pedro", "Beatriz", "Lucas", "Camila", "Gabriel", "Larissa",
            "Rafael",
        ],
        last: &[
            "Souza", "Oliveira", "Santos", "Lima", "Pereira", "Costa", "Ferreira", "Almeida",
            "Ribeiro", "Carvalho",
        ],
        email_tld: "com.br",
    },
    Country {
        code: "ID",
        cc: "62",
        first: &[
            "Budi", "Siti", "Agus", "Dewi", "Rizky", "Putri", "Eko", "Ayu", "Fajar", "Indah",
        ],
        last: &[
            "Santoso", "Wijaya", "Saputra", "Hidayat", "Kusuma", "Pratama", "Setiawan", "Lestari",
            "Nugroho", "Halim",
        ],
        email_tld: "co.id",
    },
    Country {
        code: "GB",
        cc: "44",
        first: &[
            "Oliver", "Amelia", "Harry", "Isla", "George", "Emily", "Jack", "Sophie", "Thomas",
            "Grace",
        ],
        last: &[
            "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans", "Clarke", "Walker",
            "Wright",
        ],
        email_tld: "co.uk",
    },
    Country {
        code: "US",
        cc: "1",
        first: &[
            "James", "Olivia", "Michael", "Emma", "David", "Ava", "Daniel", "Mia", "Ethan",
            "Harper",
        ],
        last: &[
            "Johnson", "Miller", "Davis", "Garcia", "Martinez", "Anderson", "Thomas", "Moore",
            "Jackson", "White",
        ],
        email_tld: "com",
    },
    Country {
        code: "MX",
        cc: "52",
        first: &[
            "Sofía",
            "Santiago",
            "Valentina",
            "Mateo",
            "Regina",
            "Diego",
            "Ximena",
            "Emiliano",
            "Renata",
            "Leonardo",
        ],
        last: &[
            "Hernández",
            "García",
            "López",
            "Martínez",
            "González",
            "Rodríguez",
            "Pérez",
            "Sánchez",
            "Ramírez",
            "Flores",
        ],
        email_tld: "com.mx",
    },
];

const GROUP_NAMES: [&str; 10] = [
    "Family",
    "Team Ops",
    "Book Club",
    "Football Sunday",
    "Neighbours",
    "Startup Founders",
    "Wholesale Buyers",
    "Alumni 2012",
    "Yoga Mornings",
    "Product Launch",
];
const BUSINESS_SUFFIX: [&str; 6] = ["Store", "Traders", "Ltda", "Pvt Ltd", "Catering", "Studio"];

fn digits(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// A mobile number valid under current numbering plans, except Brazil's legacy
/// WhatsApp ids without the ninth digit (kept on purpose: WhatsApp sends them).
fn mobile(rng: &mut StdRng, country: &Country) -> String {
    let national = match country.code {
        "IN" => format!("9{}", digits(rng, 9)),
        "BR" => {
            let area = ["11", "21", "31", "41", "51", "61", "71", "81"][rng.gen_range(0..8)];
            if rng.gen_bool(0.1) {
                format!("{area}8{}", digits(rng, 7))
            } else {
                format!("{area}9{}{}", rng.gen_range(6..10), digits(rng, 7))
            }
        }
        "ID" => format!("81{}{}", rng.gen_range(1..4), digits(rng, 8)),
        "GB" => format!(
            "7{}{}",
            [4, 5, 7, 8, 9][rng.gen_range(0..5)],
            digits(rng, 8)
        ),
        "US" => {
            let area =
                ["201", "212", "305", "312", "415", "646", "718", "917"][rng.gen_range(0..8)];
            let exchange = loop {
                let e = format!("{}{}", rng.gen_range(2..10), digits(rng, 2));
                if e != "555" {
                    break e;
                }
            };
            format!("{area}{exchange}{}", digits(rng, 4))
        }
        _ => format!("55{}", digits(rng, 8)),
    };
    format!("{}{national}", country.cc)
}

impl World {
    /// `size` people. Roughly: 40% Periskope only, 20% WA.cr only, 15% Gateway only,
    /// 10% Periskope + Gateway, 8% Periskope + WA.cr, 7% all three.
    pub fn generate(seed: u64, size: usize) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let group_count = (size / 20).clamp(3, 500);
        let groups = (0..group_count)
            .map(|i| Group {
                jid: format!(
                    "120363{:012}@g.us",
                    100_000_000_000u64 + rng.gen_range(0..899_999_999_999u64)
                ),
                name: format!(
                    "{} {}",
                    GROUP_NAMES[i % GROUP_NAMES.len()],
                    i / GROUP_NAMES.len() + 1
                ),
            })
            .collect::<Vec<_>>();
        let mut people = Vec::with_capacity(size);
        for index in 0..size {
            let country = &COUNTRIES[rng.gen_range(0..COUNTRIES.len())];
            let first = country.first[rng.gen_range(0..country.first.len())].to_string();
            let last = country.last[rng.gen_range(0..country.last.len())].to_string();
            let roll = rng.gen_range(0..100);
            let (in_periskope, in_wacr, in_gateway) = match roll {
                0..=39 => (true, false, false),
                40..=59 => (false, true, false),
                60..=74 => (false, false, true),
                75..=84 => (true, false, true),
                85..=92 => (true, true, false),
                _ => (true, true, true),
            };
            // Some Gateway-only people are known by LID alone (group members who hide their number).
            let lid_only = in_gateway && !in_periskope && !in_wacr && rng.gen_bool(0.3);
            let phone = (!lid_only).then(|| mobile(&mut rng, country));
            let lid = format!(
                "{}@lid",
                100_000_000_000_000u64 + rng.gen_range(0..199_999_999_999_999u64)
            );
            let business = rng.gen_bool(0.15).then(|| {
                format!(
                    "{last} {}",
                    BUSINESS_SUFFIX[rng.gen_range(0..BUSINESS_SUFFIX.len())]
                )
            });
            let email = rng.gen_bool(0.7).then(|| {
                let ascii = |s: &str| {
                    s.chars()
                        .filter(char::is_ascii_alphabetic)
                        .collect::<String>()
                        .to_lowercase()
                };
                format!(
                    "{}.{}{}@example.{}",
                    ascii(&first),
                    ascii(&last),
                    index,
                    country.email_tld
                )
            });
            let mut member_of: Vec<usize> = (0..rng.gen_range(0..4))
                .map(|_| rng.gen_range(0..group_count))
                .collect();
            member_of.sort_unstable();
            member_of.dedup();
            people.push(Person {
                index,
                first_name: first,
                last_name: last,
                country: country.code,
                phone,
                lid,
                business_name: business,
                email,
                in_periskope,
                in_wacr,
                in_gateway,
                periskope_knows_lid: in_periskope && rng.gen_bool(0.3),
                has_dm: !lid_only && rng.gen_bool(0.7),
                groups: member_of,
                updated_minute: rng.gen_range(0..600_000),
            });
        }
        World {
            seed,
            people,
            groups,
        }
    }

    pub fn periskope_people(&self) -> impl Iterator<Item = &Person> {
        self.people
            .iter()
            .filter(|p| p.in_periskope && p.phone.is_some())
    }

    pub fn wacr_people(&self) -> impl Iterator<Item = &Person> {
        self.people
            .iter()
            .filter(|p| p.in_wacr && p.phone.is_some())
    }

    pub fn gateway_people(&self) -> impl Iterator<Item = &Person> {
        self.people.iter().filter(|p| p.in_gateway)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_world() {
        let a = World::generate(7, 300);
        let b = World::generate(7, 300);
        assert_eq!(a.people, b.people);
        assert_ne!(World::generate(8, 300).people, a.people);
    }

    #[test]
    fn phones_are_valid_but_for_brazils_legacy_ids_and_people_are_shared() {
        let w = World::generate(42, 2000);
        let mut countries = std::collections::BTreeSet::new();
        for p in &w.people {
            countries.insert(p.country);
            if let Some(phone) = &p.phone {
                let n = phonenumber::parse(None, format!("+{phone}")).expect("parses");
                let valid = phonenumber::is_valid(&n);
                let legacy_br = p.country == "BR" && phone.len() == 12;
                assert_eq!(valid, !legacy_br, "{phone} ({})", p.country);
            }
        }
        assert_eq!(countries.len(), 6);
        assert!(w.people.iter().any(|p| p.provider_count() == 3));
        assert!(w.people.iter().any(|p| p.provider_count() == 2));
        assert!(
            w.people.iter().any(|p| p.phone.is_none()),
            "some people are LID-only"
        );
    }
}
