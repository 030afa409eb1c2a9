"""The 43 GTSRB classes: names, sign families and the outline shape of each family."""

from __future__ import annotations

GTSRB_CLASS_NAMES = [
    "speed limit 20", "speed limit 30", "speed limit 50", "speed limit 60", "speed limit 70",
    "speed limit 80", "end of speed limit 80", "speed limit 100", "speed limit 120", "no passing",
    "no passing for vehicles over 3.5t", "right-of-way at next intersection", "priority road", "yield",
    "stop", "no vehicles", "vehicles over 3.5t prohibited", "no entry", "general caution",
    "dangerous curve left", "dangerous curve right", "double curve", "bumpy road", "slippery road",
    "road narrows on the right", "road work", "traffic signals", "pedestrians", "children crossing",
    "bicycles crossing", "beware of ice/snow", "wild animals crossing", "end of all speed and passing limits",
    "turn right ahead", "turn left ahead", "ahead only", "go straight or right", "go straight or left",
    "keep right", "keep left", "roundabout mandatory", "end of no passing",
    "end of no passing by vehicles over 3.5t",
]
NUM_GTSRB_CLASSES = len(GTSRB_CLASS_NAMES)

_FAMILY_MEMBERS = {
    "prohibitory": [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16],
    "derestriction": [6, 32, 41, 42],
    "no_entry": [17],
    "mandatory": [33, 34, 35, 36, 37, 38, 39, 40],
    "danger": [11, *range(18, 32)],
    "yield": [13],
    "stop": [14],
    "priority": [12],
}
GTSRB_FAMILY = {class_id: family for family, members in _FAMILY_MEMBERS.items() for class_id in members}

FAMILY_SHAPE = {
    "prohibitory": "circle", "derestriction": "circle", "no_entry": "circle", "mandatory": "circle",
    "danger": "triangle", "yield": "inverted_triangle", "stop": "octagon", "priority": "diamond",
}


def sign_shape(class_id: int) -> str:
    """Outline of a GTSRB class (methods.md P1): circle, triangle, inverted_triangle, octagon, diamond."""
    return FAMILY_SHAPE[GTSRB_FAMILY[class_id]]
