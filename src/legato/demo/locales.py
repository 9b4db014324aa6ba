"""The people of the demo dataset: countries with their names, cities, time zones and phones.

Static tables only, read by `legato.demo.dataset`. Must never hold logic beyond shaping these
values: choosing among them is the generator's job (with its seeded PRNG).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class City:
    """A city customers live in, with its IANA time zone and UTC offset in minutes (no DST)."""

    name: str
    timezone: str
    utc_offset_min: int
    weight: float


@dataclass(frozen=True, slots=True)
class Country:
    """What the generator needs to invent a believable customer of one country."""

    code: str
    weight: float
    locale: str
    currency: str
    # Price of one euro in the local currency (catalogue prices are set in euros).
    eur_rate: float
    # E.164 prefix up to the subscriber digits, and how many subscriber digits follow it.
    phone_prefixes: tuple[str, ...]
    phone_digits: int
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    cities: tuple[City, ...]
    email_domains: tuple[str, ...]


def _names(text: str) -> tuple[str, ...]:
    return tuple(text.split(", "))


_COMMON_DOMAINS = ("gmail.com", "gmail.com", "gmail.com", "outlook.com", "yahoo.com", "icloud.com")

COUNTRIES: tuple[Country, ...] = (
    Country(
        code="ES",
        weight=0.27,
        locale="es-ES",
        currency="EUR",
        eur_rate=1.0,
        phone_prefixes=("+346", "+347"),
        phone_digits=8,
        first_names=_names(
            "Lucía, Martina, María, Sofía, Paula, Julia, Alba, Carmen, Elena, Laura, Hugo, "
            "Martín, Lucas, Mateo, Leo, Daniel, Alejandro, Pablo, Javier, Sergio, Álvaro, Marta, "
            "Raúl, Nerea, Iker, Ainhoa"
        ),
        last_names=_names(
            "García, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Gómez, "
            "Martín, Jiménez, Ruiz, Hernández, Díaz, Moreno, Muñoz, Álvarez, Romero, Alonso, "
            "Navarro, Torres, Domínguez, Vázquez"
        ),
        cities=(
            City("Madrid", "Europe/Madrid", 60, 0.32),
            City("Barcelona", "Europe/Madrid", 60, 0.25),
            City("Valencia", "Europe/Madrid", 60, 0.1),
            City("Sevilla", "Europe/Madrid", 60, 0.08),
            City("Bilbao", "Europe/Madrid", 60, 0.06),
            City("Málaga", "Europe/Madrid", 60, 0.06),
            City("Zaragoza", "Europe/Madrid", 60, 0.05),
            City("Las Palmas de Gran Canaria", "Atlantic/Canary", 0, 0.04),
            City("Palma", "Europe/Madrid", 60, 0.04),
        ),
        email_domains=(*_COMMON_DOMAINS, "hotmail.es", "telefonica.net"),
    ),
    Country(
        code="MX",
        weight=0.17,
        locale="es-MX",
        currency="MXN",
        eur_rate=19.5,
        phone_prefixes=("+5255", "+5233", "+5281"),
        phone_digits=8,
        first_names=_names(
            "Sofía, Valentina, Regina, Ximena, Camila, Fernanda, Daniela, Renata, Santiago, "
            "Mateo, Sebastián, Diego, Emiliano, Leonardo, Miguel Ángel, José Luis, Juan Pablo, "
            "Andrea, Guadalupe, Alejandra"
        ),
        last_names=_names(
            "Hernández, García, Martínez, López, González, Pérez, Rodríguez, Sánchez, Ramírez, "
            "Cruz, Flores, Gómez, Morales, Vázquez, Reyes, Jiménez, Torres, Díaz, Gutiérrez, "
            "Ruiz, Mendoza, Aguilar"
        ),
        cities=(
            City("Ciudad de México", "America/Mexico_City", -360, 0.45),
            City("Guadalajara", "America/Mexico_City", -360, 0.18),
            City("Monterrey", "America/Monterrey", -360, 0.17),
            City("Puebla", "America/Mexico_City", -360, 0.08),
            City("Tijuana", "America/Tijuana", -480, 0.06),
            City("Mérida", "America/Merida", -360, 0.06),
        ),
        email_domains=(*_COMMON_DOMAINS, "hotmail.com", "prodigy.net.mx"),
    ),
    Country(
        code="FR",
        weight=0.13,
        locale="fr-FR",
        currency="EUR",
        eur_rate=1.0,
        phone_prefixes=("+336", "+337"),
        phone_digits=8,
        first_names=_names(
            "Emma, Jade, Louise, Alice, Chloé, Léa, Manon, Inès, Camille, Gabriel, Léo, Raphaël, "
            "Arthur, Louis, Jules, Adam, Hugo, Nathan, Théo, Zoé, Mathis, Océane"
        ),
        last_names=_names(
            "Martin, Bernard, Thomas, Petit, Robert, Richard, Durand, Dubois, Moreau, Laurent, "
            "Simon, Michel, Lefèvre, Leroy, Roux, David, Bertrand, Morel, Fournier, Girard, "
            "Bonnet, Dupont"
        ),
        cities=(
            City("Paris", "Europe/Paris", 60, 0.4),
            City("Lyon", "Europe/Paris", 60, 0.15),
            City("Marseille", "Europe/Paris", 60, 0.13),
            City("Toulouse", "Europe/Paris", 60, 0.1),
            City("Bordeaux", "Europe/Paris", 60, 0.08),
            City("Lille", "Europe/Paris", 60, 0.07),
            City("Nantes", "Europe/Paris", 60, 0.07),
        ),
        email_domains=(*_COMMON_DOMAINS, "orange.fr", "free.fr", "laposte.net"),
    ),
    Country(
        code="US",
        weight=0.14,
        locale="en-US",
        currency="USD",
        eur_rate=1.08,
        phone_prefixes=("+1212", "+1415", "+1305", "+1512", "+1312", "+1206", "+1617"),
        phone_digits=7,
        first_names=_names(
            "Olivia, Emma, Charlotte, Amelia, Sophia, Mia, Harper, Evelyn, Liam, Noah, Oliver, "
            "James, Elijah, William, Henry, Lucas, Benjamin, Ethan, Ava, Madison, Jackson, "
            "Aiden"
        ),
        last_names=_names(
            "Smith, Johnson, Williams, Brown, Jones, Miller, Davis, Wilson, Anderson, Taylor, "
            "Thomas, Moore, Jackson, White, Harris, Clark, Lewis, Walker, Young, Allen, King, "
            "Wright"
        ),
        cities=(
            City("New York", "America/New_York", -300, 0.3),
            City("San Francisco", "America/Los_Angeles", -480, 0.15),
            City("Miami", "America/New_York", -300, 0.12),
            City("Austin", "America/Chicago", -360, 0.1),
            City("Chicago", "America/Chicago", -360, 0.13),
            City("Seattle", "America/Los_Angeles", -480, 0.1),
            City("Boston", "America/New_York", -300, 0.1),
        ),
        email_domains=(*_COMMON_DOMAINS, "aol.com", "hotmail.com"),
    ),
    Country(
        code="GB",
        weight=0.1,
        locale="en-GB",
        currency="GBP",
        eur_rate=0.85,
        phone_prefixes=("+447",),
        phone_digits=9,
        first_names=_names(
            "Olivia, Amelia, Isla, Ava, Ivy, Freya, Lily, Florence, Muhammad, Noah, Oliver, "
            "George, Arthur, Leo, Harry, Oscar, Archie, Henry, Poppy, Sienna, Alfie, Grace"
        ),
        last_names=_names(
            "Smith, Jones, Taylor, Brown, Williams, Wilson, Johnson, Davies, Patel, Robinson, "
            "Wright, Thompson, Evans, Walker, White, Roberts, Green, Hall, Wood, Jackson, "
            "Clarke, Khan"
        ),
        cities=(
            City("London", "Europe/London", 0, 0.45),
            City("Manchester", "Europe/London", 0, 0.14),
            City("Birmingham", "Europe/London", 0, 0.12),
            City("Leeds", "Europe/London", 0, 0.08),
            City("Glasgow", "Europe/London", 0, 0.08),
            City("Bristol", "Europe/London", 0, 0.07),
            City("Edinburgh", "Europe/London", 0, 0.06),
        ),
        email_domains=(*_COMMON_DOMAINS, "btinternet.com", "hotmail.co.uk"),
    ),
    Country(
        code="DE",
        weight=0.1,
        locale="de-DE",
        currency="EUR",
        eur_rate=1.0,
        phone_prefixes=("+49151", "+49160", "+49170", "+49176"),
        phone_digits=8,
        first_names=_names(
            "Emilia, Mia, Sophia, Hannah, Emma, Lina, Mila, Ella, Clara, Noah, Matteo, Elias, "
            "Finn, Leon, Paul, Henry, Luis, Felix, Jonas, Lukas, Anna, Maximilian"
        ),
        last_names=_names(
            "Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, "
            "Hoffmann, Schäfer, Koch, Bauer, Richter, Klein, Wolf, Schröder, Neumann, Schwarz, "
            "Zimmermann, Braun, Krüger"
        ),
        cities=(
            City("Berlin", "Europe/Berlin", 60, 0.3),
            City("Hamburg", "Europe/Berlin", 60, 0.17),
            City("München", "Europe/Berlin", 60, 0.17),
            City("Köln", "Europe/Berlin", 60, 0.12),
            City("Frankfurt am Main", "Europe/Berlin", 60, 0.1),
            City("Stuttgart", "Europe/Berlin", 60, 0.07),
            City("Düsseldorf", "Europe/Berlin", 60, 0.07),
        ),
        email_domains=(*_COMMON_DOMAINS, "gmx.de", "web.de", "t-online.de"),
    ),
    Country(
        code="IT",
        weight=0.05,
        locale="it-IT",
        currency="EUR",
        eur_rate=1.0,
        phone_prefixes=("+3933", "+3934", "+3939"),
        phone_digits=8,
        first_names=_names(
            "Sofia, Aurora, Giulia, Ginevra, Vittoria, Beatrice, Alice, Leonardo, Francesco, "
            "Tommaso, Edoardo, Alessandro, Lorenzo, Mattia, Gabriele"
        ),
        last_names=_names(
            "Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino, Greco, "
            "Bruno, Gallo, Conti, De Luca, Costa"
        ),
        cities=(
            City("Milano", "Europe/Rome", 60, 0.35),
            City("Roma", "Europe/Rome", 60, 0.35),
            City("Torino", "Europe/Rome", 60, 0.12),
            City("Napoli", "Europe/Rome", 60, 0.1),
            City("Bologna", "Europe/Rome", 60, 0.08),
        ),
        email_domains=(*_COMMON_DOMAINS, "libero.it", "virgilio.it"),
    ),
    Country(
        code="PT",
        weight=0.04,
        locale="pt-PT",
        currency="EUR",
        eur_rate=1.0,
        phone_prefixes=("+35191", "+35193", "+35196"),
        phone_digits=7,
        first_names=_names(
            "Maria, Leonor, Matilde, Beatriz, Carolina, Francisco, Afonso, Tomás, Duarte, "
            "Santiago, João, Inês, Rodrigo, Mariana"
        ),
        last_names=_names(
            "Silva, Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Jesus, "
            "Sousa, Fernandes, Gonçalves, Gomes, Lopes"
        ),
        cities=(
            City("Lisboa", "Europe/Lisbon", 0, 0.5),
            City("Porto", "Europe/Lisbon", 0, 0.35),
            City("Braga", "Europe/Lisbon", 0, 0.15),
        ),
        email_domains=(*_COMMON_DOMAINS, "sapo.pt"),
    ),
)

#: Letters with diacritics and their ASCII stand-ins, for e-mail local parts.
ASCII_FOLD = str.maketrans(
    {
        "á": "a",
        "à": "a",
        "â": "a",
        "ä": "a",
        "ã": "a",
        "é": "e",
        "è": "e",
        "ê": "e",
        "ë": "e",
        "í": "i",
        "ï": "i",
        "î": "i",
        "ó": "o",
        "ò": "o",
        "ô": "o",
        "ö": "o",
        "õ": "o",
        "ú": "u",
        "ù": "u",
        "û": "u",
        "ü": "u",
        "ñ": "n",
        "ç": "c",
        "ß": "ss",
        "Á": "a",
        "É": "e",
        "Í": "i",
        "Ó": "o",
        "Ú": "u",
        "Ü": "u",
        "Ö": "o",
        "Ä": "a",
        "Ñ": "n",
        "Ç": "c",
        " ": "",
        "'": "",
    }
)
