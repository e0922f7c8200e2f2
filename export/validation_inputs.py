"""The fixed validation inputs per task: mixed lengths, so batch padding is exercised."""

from __future__ import annotations

TRANSLATION = [
    "Hello.",
    "A man rides a bicycle down the street.",
    "Two young children are playing with a dog in the park.",
    "A woman in a red dress is standing next to a large white building while people walk by.",
    "Dogs run.",
    "A group of people are sitting at a table outside a cafe, talking and drinking coffee "
    "on a sunny afternoon.",
    "The boy jumps into the water.",
    "An old man with a hat sells fruit at a market stall.",
]

SUMMARIZATION = [
    "A man in a blue shirt repaired the roof of a small house on Monday. Neighbours watched "
    "from the street.",
    "The city council met on Tuesday.",
    "Two children played football in the park while their parents sat on a bench. Later it "
    "started to rain, and everyone went home to eat dinner together.",
    "A woman opened a new bakery near the station. She sells bread and cakes every morning.",
    "The train was late.",
    "A group of students visited the museum. They saw old paintings, a large statue and a "
    "room full of maps, then wrote short reports about the trip.",
    "The dog found a ball in the garden and brought it to the girl.",
    "Heavy snow closed the mountain road for three days.",
]

CHAT = [
    "Hi!",
    "How are you today?",
    "I went to the beach with my friends yesterday and we played volleyball.",
    "What do you like to eat?",
    "My dog is sick.",
    "I am planning a trip to the mountains next week, do you have any advice for hiking?",
    "Thanks.",
    "Do you play any music?",
]

INPUTS: dict[str, list[str]] = {
    "translation": TRANSLATION,
    "summarization": SUMMARIZATION,
    "chat": CHAT,
}
