"""Sample texts for parity checks and benchmarks: narrative requests and item texts of varied length.

Written for this project (no dataset text), in the style of the requests Mint trains on.
"""

SAMPLE_REQUESTS: tuple[str, ...] = (
    "My partner and I are heading to Lisbon for a long weekend in October. We love quiet bars "
    "where you can actually talk, ideally with some live fado or jazz, and we would rather avoid "
    "the places that are packed with tourists. We are not big drinkers, so a good wine list and a "
    "few small plates matter more than cocktails. Any neighbourhood suggestions are welcome too.",
    "Looking for a family friendly place to eat in Boston with two kids under six. They are picky "
    "but love pasta and pizza, and we need somewhere that does not mind noise and has high chairs. "
    "Bonus points if it is close to the aquarium or a park where they can run around after dinner.",
    "I will be in Kyoto for three days on my own and want to see gardens and temples early in the "
    "morning before the crowds arrive. I enjoy long walks, quiet tea houses and small museums about "
    "crafts. I am vegetarian, so any recommendations for simple local food without meat or fish "
    "stock would make my trip.",
    "Heading to Denver with a group of friends who love hiking. We want a couple of day hikes with "
    "great views that are not too technical, a brewery with a patio for afterwards, and somewhere "
    "for a big hearty breakfast before we set off. We will have a car, so an hour's drive is fine.",
    "I just started playing guitar and my cheap amp sounds awful. I play mostly blues and some "
    "classic rock at home at low volume, so I do not need anything loud. What small practice amp "
    "or pedal would give me a warm tone without costing a fortune? Headphone output would be great.",
    "We are celebrating our anniversary in Vienna and want one special dinner: refined but not "
    "stuffy, seasonal Austrian cooking, a good dessert, and ideally a view or a beautiful old room. "
    "The rest of the time we want cosy coffee houses, a classical concert and a walk along the river.",
    "Visiting Montreal in winter for the first time. What are indoor things to do on very cold days? "
    "We like markets, bookstores, live music and trying local specialities like bagels and poutine. "
    "Cheap is better, we are students, and we do not mind taking the metro everywhere.",
    "Our drummer needs new sticks and a practice pad that will survive daily use. Also looking for "
    "reliable guitar strings that stay in tune on stage, and a tuner that works in a loud bar.",
)

SAMPLE_ITEMS: tuple[str, ...] = (
    "Tasca do Chico in Lisbon, PT is known for nightlife. Specifically: bars, fado. Small and crowded, "
    "with fado singers taking turns late into the night.",
    "Giacomo's in Boston, US is known for restaurants and food. Specifically: italian, seafood.",
    "A compact 10 watt practice amplifier with a headphone jack and a clean, warm tone at low volume.",
    "Nickel wound electric guitar strings, light gauge. They stay in tune and last a few months of gigs.",
)

SAMPLE_TEXTS: tuple[str, ...] = SAMPLE_REQUESTS + SAMPLE_ITEMS + ("bar", "quiet bar with jazz " * 120)
